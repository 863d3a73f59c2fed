"""apm-viz: watch an Asynchronous Perception Machine's islands of agreement form.

Data flows one way: images -> teachers -> model/ttt -> islands -> figures -> export.
No module here imports streamlit.

In a notebook (see `apm_viz.api`):

    import apm_viz
    film = apm_viz.islands_film("cat.jpg", grid=32, iters=250)
    film.figure(iteration=50)   # plotly, shown inline
    film.export("talk/")

and `teacher_vs_apm`, `latent_walk`, `classification`, `boring_video`.
"""

from .errors import ApmVizError

__version__ = "0.1.0"
#: The notebook entry points, imported on first use (torch and the models load then, not at `import apm_viz`).
API = ("islands_film", "teacher_vs_apm", "latent_walk", "classification", "boring_video")
__all__ = ["ApmVizError", "__version__", *API]


def __getattr__(name: str):
    if name in API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'apm_viz' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(API))
