"""How figures look: the slide styles (light and dark, for matplotlib) and the
screen font (plotly).

`slide_context(style)` is the matplotlib rc context every slide figure is
built in; `new_figure(style, size)` the empty slide figure they start from.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import ApmVizError

#: The app's plotly font.
FONT = dict(family="DejaVu Sans, Arial, sans-serif", size=14)


@dataclass(frozen=True)
class Style:
    """Colours and type for slides. palette: Okabe-Ito (colour-blind safe),
    ordered so that palette[0] is the APM and palette[1] the teacher."""

    name: str
    background: str
    foreground: str
    muted: str
    grid: str
    palette: tuple[str, ...]
    font: str = "DejaVu Sans"
    size: float = 20.0  # points, body text; titles are 1.15x

    def rc(self) -> dict:
        return {
            "font.family": self.font, "font.size": self.size, "axes.titlesize": self.size * 1.15,
            "axes.labelsize": self.size, "xtick.labelsize": self.size * 0.85, "ytick.labelsize": self.size * 0.85,
            "legend.fontsize": self.size * 0.85, "figure.titlesize": self.size * 1.15,
            "text.color": self.foreground, "axes.labelcolor": self.foreground, "axes.edgecolor": self.muted,
            "xtick.color": self.muted, "ytick.color": self.muted, "axes.facecolor": self.background,
            "figure.facecolor": self.background, "savefig.facecolor": self.background,
            "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.color": self.grid,
            "grid.linewidth": 1.0, "lines.linewidth": 3.0, "lines.markersize": 8, "legend.frameon": False,
            "axes.prop_cycle": __import__("cycler").cycler(color=list(self.palette)),
            # Text stays text in PDF (TrueType embedded); SVG text becomes paths so it renders the same everywhere.
            "pdf.fonttype": 42, "svg.fonttype": "path", "svg.hashsalt": "apm-viz", "path.simplify": False,
        }


STYLES = {
    "light": Style("light", "#ffffff", "#1a1a1a", "#5f6368", "#e6e6e6",
                   ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")),
    "dark": Style("dark", "#121418", "#f2f2f2", "#a8adb4", "#30353c",
                  ("#56B4E9", "#E69F00", "#009E73", "#CC79A7", "#F0E442", "#D55E00")),
}


def get_style(name: str) -> Style:
    try:
        return STYLES[name]
    except KeyError:
        raise ApmVizError(f"unknown style {name!r}; choose {' or '.join(STYLES)}") from None


@contextmanager
def slide_context(style: Style):
    """matplotlib (Agg) with the style's rc settings, for building slide figures."""
    import matplotlib

    matplotlib.use("Agg")
    with matplotlib.rc_context(style.rc()):
        yield


def new_figure(style: Style, size: tuple[float, float]):
    """An empty matplotlib Figure of `size` inches on the style's background."""
    from matplotlib.figure import Figure

    w, h = size
    return Figure(figsize=(w, h), dpi=100, facecolor=style.background)
