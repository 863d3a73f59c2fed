"""Teacher vs APM (the paper's Fig. 5(ii)): the teacher's grid and the APM's
field in one colour space, and the per-location error between them.

Screen: the page draws these with `figures.maps` (`island_map_figure`,
`error_map_figure`) and `figures.curves`; the numbers come from `compare`.
Slides: `teacher_vs_apm_figure`, input | teacher grid | APM grid | error map
with its colour bar, all vectors; `comparison_slide` draws it for one
iteration of a `compare.Comparison`.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .maps import Panel, colorbar, draw_values, maps_figure, under
from .style import Style


def error_unit(comparison, metric: str = "l1") -> str:
    """What an error map of `metric` counts, in words ("L1 over 384 channels", "1 − cos")."""
    return f"L1 over {comparison.teacher.grid.shape[-1]} channels" if metric == "l1" else "1 − cos"


def comparison_slide(comparison, iteration: int, style: Style, metric: str = "l1", fixed: bool = False):
    """`teacher_vs_apm_figure` of a `compare.Comparison` at `iteration`, with
    the mean relative L1 error in the title. fixed: the error colours run
    from 0 to the first snapshot's maximum (the same for every iteration)
    instead of the map's own min and max (the paper's)."""
    frame = comparison.frame(iteration)
    error = comparison.error(iteration, metric)
    first = comparison.run.iterations[0]
    zmax = float(comparison.error(first, metric).max()) if fixed else None
    relative = comparison.stats(iteration, metric).relative
    return teacher_vs_apm_figure(comparison.teacher.image, frame.teacher_colors, frame.apm_colors, error, style,
                                 frame.iteration, error_unit(comparison, metric), comparison.run.teacher_model,
                                 0.0 if fixed else None, zmax, f"mean relative L1 error {relative:.3f}")


def teacher_vs_apm_figure(image: np.ndarray, teacher_colors: np.ndarray, apm_colors: np.ndarray,
                          error: np.ndarray, style: Style, iteration: int, unit: str, teacher: str = "teacher",
                          vmin: Optional[float] = None, vmax: Optional[float] = None, note: str = ""):
    """The paper's Fig. 5(ii) at one iteration: input | teacher grid | APM grid
    (one colour space, `compare.JointProjection`) | error map with its colour bar.

    image: (H, W, 3); teacher_colors, apm_colors: (h, w, 3) in [0, 1];
    error: (h, w) in `unit` (e.g. "L1 over 384 channels" or "1 − cos").
    vmin, vmax: the error's colour range (default the map's own min and max,
    the paper's min-max scaling). note: appended to the title (e.g. the mean error).
    """
    lo = float(error.min()) if vmin is None else float(vmin)
    hi = float(error.max()) if vmax is None else float(vmax)
    title = f"Teacher vs APM  ·  iteration {iteration}" + (f"  ·  {note}" if note else "")
    panels = [Panel(teacher_colors, "teacher grid"), Panel(apm_colors, "APM grid")]
    fig, axes = maps_figure(image, panels, style, title, extra=1, size=(17.0, 5.2))
    under(axes[1], teacher, style)
    under(axes[2], "same colours as the teacher", style)
    mesh = draw_values(axes[3], error, "inferno", lo, hi)
    scaled = vmin is None and vmax is None
    axes[3].set_title("error" + (" (min-max)" if scaled else ""), pad=10)
    colorbar(fig, axes[3], mesh, unit, style)
    return fig
