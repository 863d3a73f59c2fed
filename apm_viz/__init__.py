"""apm-viz: watch an Asynchronous Perception Machine's islands of agreement form.

Data flows one way: images -> teachers -> model/ttt -> islands -> figures -> export.
No module here imports streamlit.
"""

from .errors import ApmVizError

__version__ = "0.1.0"
__all__ = ["ApmVizError", "__version__"]
