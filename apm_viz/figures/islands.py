"""The Islands page's figures for slides and files, built from a finished run
(`Talk`): the strip of island maps over iterations, the input beside its
island map, the 2-D and 3-D projections of one frame, the loss, the
island-count and the alignment curves (`FIGURES`), each as a matplotlib Figure (true vectors:
maps are one quad per location, the 3-D scatter is vector points), and the
app's plotly versions of the 2-D scatter and the curves restyled for slides
(`plotly_figure`, drawn by kaleido). The films: one RGB frame per snapshot
(input beside map, or the turning 3-D scatter). `frame_figure` is the
command line's `islands` frame.

The app's screen figures of the same content are `figures.maps`,
`figures.projections` and `figures.curves`; `export` turns these into files.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from ..errors import ApmVizError
from ..islands import Projection, islands_text, project
from ..pipeline import IslandsResult
from ..render import figure_to_rgb
from .curves import curve_figure, log_ticks
from .maps import draw_image, draw_map, upscale
from .projections import scatter_figure
from .style import Style, get_style, new_figure, slide_context

#: The figures of the Islands page, in bundle order, with their size in inches
#: (width, height) for a 16:9 slide and a one-line description.
FIGURES = {
    "strip": ((16.0, 3.9), "input, then the island map at six iterations"),
    "pair": ((12.0, 6.6), "input beside its island map at the chosen iteration"),
    "tsne2d": ((8.0, 8.0), "2-D projection of the field at the chosen iteration"),
    "tsne3d": ((8.0, 8.0), "3-D projection of the field from the chosen camera"),
    "loss": ((10.0, 5.6), "TTT loss per iteration (log scale)"),
    "islands": ((10.0, 5.6), "island count per snapshot, with the teacher's"),
    "alignment": ((10.0, 5.6), "share of the field's structure in the teacher's and in the positional code's"),
}
#: Figures the app draws with plotly; kaleido writes these when a Chromium exists.
PLOTLY_FIGURES = ("tsne2d", "loss", "islands")
#: Plotly layout pixels per inch of a figure's slide size (kaleido scale = dpi / this).
PLOTLY_PX_PER_INCH = 100


@dataclass
class Talk:
    """A finished islands run with what its figures need.

    result: the run (settings, teacher output, snapshots, 3-D projection, island counts).
    projection2d: the 2-D projection of the same snapshots (computed when not given).
    image_bytes: the original image file, bundled so the run can be reproduced;
        None bundles a lossless PNG of the decoded image instead.
    """

    result: IslandsResult
    projection2d: Projection
    image_bytes: Optional[bytes] = None

    @classmethod
    def from_result(cls, result: IslandsResult, projection2d: Optional[Projection] = None,
                    image_bytes: Optional[bytes] = None) -> "Talk":
        if projection2d is None:
            cfg = replace(result.settings.projection, dims=2)
            projection2d = project([s.field for s in result.run.snapshots], cfg)
        return cls(result, projection2d, image_bytes)

    @property
    def iterations(self) -> list[int]:
        return self.result.run.iterations

    def frame_index(self, iteration: Optional[int]) -> int:
        """Index of the snapshot at `iteration` (see `frame_index`)."""
        return frame_index(self.iterations, iteration)

    def stamp(self, k: int) -> str:
        snap = self.result.run.snapshots[k]
        return f"iteration {snap.iteration}  ·  loss {snap.loss:.3g}  ·  {islands_text(self.result.islands[k][1])}"

    @property
    def three_d(self) -> bool:
        """Whether the maps come from a 3-D projection (a 1-D grayscale one has no 3-D scatter)."""
        return self.result.projection.coords[0].shape[1] == 3

    def figure_names(self) -> list[str]:
        """The `FIGURES` this run has: all but the 3-D scatter for a 1-D projection."""
        return [n for n in FIGURES if self.three_d or n != "tsne3d"]

    def animation_names(self) -> list[str]:
        return [n for n in ANIMATIONS if self.three_d or n != "tsne3d"]


def frame_index(iterations: list[int], iteration: Optional[int]) -> int:
    """Index of the snapshot at `iteration` among a run's snapshot `iterations`
    (the last one taken before it; None: the last)."""
    if not iterations:
        raise ApmVizError("this run has no snapshots to export")
    if iteration is None:
        return len(iterations) - 1
    before = [k for k, i in enumerate(iterations) if i <= iteration]
    return before[-1] if before else 0


def _new_figure(name: str, style: Style, size: Optional[tuple[float, float]] = None):
    return new_figure(style, size or FIGURES[name][0])


def strip_frames(talk: Talk, n: int = 6) -> list[int]:
    """Snapshot indices for the strip: the ones nearest n evenly spaced
    iterations (250 iterations: 0, 50, ..., 250, the paper's figure)."""
    its = talk.iterations
    targets = np.linspace(its[0], its[-1], n)
    picked = sorted({int(np.argmin([abs(i - t) for i in its])) for t in targets})
    return picked


def strip_figure(talk: Talk, style: Style, n: int = 6):
    """The input, then the island map at n iterations, each titled with its
    iteration and island count."""
    ks = strip_frames(talk, n)
    res = talk.result
    cols = len(ks) + 1
    shares = bool(res.alignment)  # two more lines under each map: teacher share, position share
    fig = _new_figure("strip", style, (2.6 * cols, 4.7 if shares else 3.9))
    axes = fig.subplots(1, cols)
    draw_image(axes[0], res.teacher.image)
    axes[0].set_title("input", pad=10)
    for ax, k in zip(axes[1:], ks):
        draw_map(ax, res.projection.colors[k], style)
        ax.set_title(f"iteration {res.run.snapshots[k].iteration}", pad=10)
        ax.text(0.5, -0.06, islands_text(res.islands[k][1]) + _shares_text(res, k), transform=ax.transAxes,
                ha="center", va="top", color=style.muted, fontsize=style.size * 0.85)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.25 if shares else 0.12, top=0.88 if shares else 0.86,
                        wspace=0.06)
    return fig


def _shares_text(res: IslandsResult, k: int) -> str:
    """"\nteacher 0.59\nposition 0.45" for snapshot k, where the alignment is known
    (one line each: one line for both is wider than a map)."""
    if k >= len(res.alignment):
        return ""
    _, t, p = res.alignment[k]
    return f"\nteacher {t:.2f}\nposition {p:.2f}"


def pair_figure(talk: Talk, k: int, style: Style):
    """The input beside its island map at snapshot k, the run's state stamped on top."""
    res = talk.result
    fig = _new_figure("pair", style)
    axes = fig.subplots(1, 2)
    draw_image(axes[0], res.teacher.image)
    axes[0].set_title("input", pad=10)
    draw_map(axes[1], res.projection.colors[k], style)
    axes[1].set_title("APM islands", pad=10)
    fig.suptitle(talk.stamp(k), y=0.965)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.03, top=0.83, wspace=0.05)
    return fig


def _point_size(n: int, inches: float) -> float:
    # Points as large as fits: about 1/1.6 of the spacing of a grid of n points across the plot.
    spacing_pt = inches * 72 / np.sqrt(max(n, 1)) / 1.6
    return float(np.clip(spacing_pt, 2.0, 14.0) ** 2)


def scatter2d_figure(talk: Talk, k: int, style: Style):
    """2-D projection of snapshot k, points coloured as on the island map."""
    p = talk.projection2d
    c = p.coords[k]
    fig = _new_figure("tsne2d", style)
    ax = fig.add_axes((0.04, 0.04, 0.92, 0.84))
    ax.scatter(c[:, 0], c[:, 1], s=_point_size(len(c), 7.0), c=p.colors[k].reshape(-1, 3), linewidths=0)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_axis_off()
    fig.suptitle(f"2-D {_method(p)}  ·  iteration {talk.iterations[k]}", y=0.96)
    return fig


def scatter3d_figure(talk: Talk, k: int, style: Style, azimuth: float, elevation: float, title: Optional[str] = None):
    """3-D projection of snapshot k seen from (azimuth, elevation) degrees,
    the same camera as `figures.camera_from_angles`; colours as on the island map."""
    p = talk.result.projection
    c = p.coords[k]
    fig = _new_figure("tsne3d", style)
    ax = fig.add_axes((0.0, 0.0, 1.0, 0.9), projection="3d")
    ax.set_facecolor(style.background)
    ax.scatter(c[:, 0], c[:, 1], c[:, 2], s=_point_size(len(c), 5.5), c=p.colors[k].reshape(-1, 3), linewidths=0,
               depthshade=False, alpha=1.0)
    lo, hi = np.concatenate(p.coords).min(0), np.concatenate(p.coords).max(0)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_zlim(lo[2], hi[2])
    ax.set_box_aspect((1, 1, 1), zoom=1.2)  # no axes to show; 1.2 still keeps a turning cloud inside the frame
    ax.view_init(elev=elevation, azim=azimuth)
    ax.set_axis_off()
    fig.suptitle(title or f"3-D {_method(p)}  ·  iteration {talk.iterations[k]}", y=0.96)
    return fig


def _method(p: Projection) -> str:
    return {"tsne": "t-SNE", "sklearn-tsne": "t-SNE (scikit-learn, frames independent)"}.get(p.config.method, "PCA")


def loss_figure(talk: Talk, style: Style, current: Optional[int] = None):
    fig = _new_figure("loss", style)
    ax = fig.add_subplot()
    for name, pts in talk.result.run.loss_series().items():
        if pts:
            x, y = zip(*pts)
            ax.plot(x, y, label=name)
    ax.set_yscale("log")
    from matplotlib.ticker import NullLocator

    ticks, labels = log_ticks(y for pts in talk.result.run.loss_series().values() for _, y in pts)
    if ticks:
        ax.set_yticks(ticks, labels)
        ax.yaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("TTT iteration")
    ax.set_ylabel("loss (MSE)")
    ax.set_title("loss", loc="left")
    if current is not None:
        ax.axvline(current, color=style.muted, linestyle="--", linewidth=2)
    if len(talk.result.run.terms) > 1:
        ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def islands_figure(talk: Talk, style: Style, current: Optional[int] = None):
    res = talk.result
    fig = _new_figure("islands", style)
    ax = fig.add_subplot()
    x, y = zip(*res.islands)
    ax.plot(x, y, marker="o", label="APM", color=style.palette[0])
    ax.axhline(res.teacher_islands, color=style.palette[1], linestyle="--", linewidth=3,
               label=f"teacher {res.teacher_islands}")
    ax.set_xlabel("TTT iteration")
    ax.set_ylabel("islands")
    ax.set_title(f"islands at τ = {res.settings.tau:.2f}", loc="left")
    ax.set_ylim(bottom=0)
    if current is not None:
        ax.axvline(current, color=style.muted, linestyle=":", linewidth=2)
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def alignment_figure(talk: Talk, style: Style, current: Optional[int] = None):
    """Teacher share and position share of the field's top principal directions per snapshot."""
    res = talk.result
    fig = _new_figure("alignment", style)
    ax = fig.add_subplot()
    if res.alignment:
        its, teacher, position = zip(*res.alignment)
        ax.plot(its, teacher, marker="o", label="teacher share", color=style.palette[0])
        ax.plot(its, position, marker="s", label="position share", color=style.palette[1])
    ax.set_xlabel("TTT iteration")
    ax.set_ylabel("share of the top 3 directions")
    ax.set_title("alignment of the field's top 3 directions", loc="left")
    ax.set_ylim(0, 1.02)
    if current is not None:
        ax.axvline(current, color=style.muted, linestyle=":", linewidth=2)
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def matplotlib_figure(talk: Talk, name: str, style: str = "light", frame: Optional[int] = None,
                      azimuth: float = 45.0, elevation: float = 25.0):
    """The matplotlib Figure for one of `FIGURES` in a slide style; frame: the
    iteration of the per-frame figures (None: the last snapshot); azimuth,
    elevation: the 3-D camera in degrees."""
    st = get_style(style)
    k = talk.frame_index(frame)
    it = talk.iterations[k]
    with slide_context(st):
        if name == "strip":
            return strip_figure(talk, st)
        if name == "pair":
            return pair_figure(talk, k, st)
        if name == "tsne2d":
            return scatter2d_figure(talk, k, st)
        if name == "tsne3d":
            return scatter3d_figure(talk, k, st, azimuth, elevation)
        if name == "loss":
            return loss_figure(talk, st, it)
        if name == "islands":
            return islands_figure(talk, st, it)
        if name == "alignment":
            return alignment_figure(talk, st, it)
    raise ApmVizError(f"unknown figure {name!r}; choose from {', '.join(FIGURES)}")


# -- the same figures with plotly (the app's own, restyled for slides) -------------

def plotly_figure(talk: Talk, name: str, style: str = "light", frame: Optional[int] = None):
    """The app's plotly figure for one of `PLOTLY_FIGURES`, in a slide style
    (frame: as in `matplotlib_figure`)."""
    style = get_style(style)
    k = talk.frame_index(frame)
    it = talk.iterations[k]
    res = talk.result
    if name == "tsne2d":
        p = talk.projection2d
        fig = scatter_figure(p.coords[k], p.colors[k], f"2-D {_method(p)}  ·  iteration {it}")
        fig.update_traces(marker_size=np.sqrt(_point_size(len(p.coords[k]), 7.0)) * 100 / 72)
    elif name == "loss":
        fig = curve_figure(talk.result.run.loss_series(), "loss", "loss (MSE)", current=it, log_y=True)
        fig.update_traces(mode="lines")
        ticks, labels = log_ticks(y for pts in talk.result.run.loss_series().values() for _, y in pts)
        fig.update_yaxes(tickvals=ticks, ticktext=labels)
    elif name == "islands":
        fig = curve_figure({"APM": res.islands}, f"islands at τ = {res.settings.tau:.2f}", "islands", current=it)
        fig.add_hline(y=res.teacher_islands, line=dict(color=style.palette[1], dash="dash", width=4),
                      annotation_text=f"teacher {res.teacher_islands}", annotation_position="top right",
                      annotation_font=dict(color=style.palette[1]))
        fig.update_yaxes(rangemode="tozero")
    else:
        raise ApmVizError(f"{name!r} is drawn with matplotlib only")
    _plotly_style(fig, style, name)
    return fig


def _plotly_style(fig, style: Style, name: str) -> None:
    px = PLOTLY_PX_PER_INCH / 72  # points -> layout pixels
    size = style.size * px
    w, h = FIGURES[name][0]
    fig.update_layout(width=int(w * PLOTLY_PX_PER_INCH), height=int(h * PLOTLY_PX_PER_INCH),
                      paper_bgcolor=style.background, plot_bgcolor=style.background, colorway=list(style.palette),
                      font=dict(family=style.font, size=size, color=style.foreground),
                      title=dict(font=dict(size=size * 1.15), x=0.02 if name != "tsne2d" else 0.5,
                                 xanchor="left" if name != "tsne2d" else "center"),
                      margin=dict(l=30 * px, r=20 * px, t=60 * px, b=40 * px) if name != "tsne2d" else
                      dict(l=10, r=10, t=70 * px, b=10),
                      legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom",
                                  font=dict(size=size * 0.85)),
                      showlegend=name == "loss" and len(fig.data) > 1)
    for i, tr in enumerate(fig.data):
        if tr.type == "scatter" and name != "tsne2d":
            tr.line.color = style.palette[i % len(style.palette)]
            tr.line.width = 4
            tr.marker.size = 11
    if name != "tsne2d":
        axis = dict(gridcolor=style.grid, linecolor=style.muted, tickfont=dict(size=size * 0.85, color=style.muted),
                    title_font=dict(size=size), zeroline=False, showline=True)
        fig.update_xaxes(**axis)
        fig.update_yaxes(**axis)
        for shape in fig.layout.shapes:
            if shape.line.color == "#d62728":  # the current-iteration marker
                shape.line.color = style.muted
                shape.line.width = 3


# -- films ----------------------------------------------------------------------------

def islands_frames(talk: Talk, style: str = "light", dpi: float = 100) -> list[np.ndarray]:
    """One RGB frame per snapshot: the input beside its island map, stamped
    with iteration, loss and island count."""
    st = get_style(style)
    frames = []
    with slide_context(st):
        for k in range(len(talk.iterations)):
            frames.append(figure_to_rgb(pair_figure(talk, k, st), dpi))
    return frames


def tsne3d_frames(talk: Talk, style: str = "light", azimuth: float = 45.0, elevation: float = 25.0,
                  rotate: bool = False, hold: int = 1, dpi: float = 100) -> list[np.ndarray]:
    """The 3-D projection, snapshot by snapshot, from the chosen camera.

    rotate: the camera turns once around over the whole animation. hold: frames
    per snapshot (the camera keeps turning while a snapshot holds)."""
    st = get_style(style)
    n = len(talk.iterations) * max(1, hold)
    frames = []
    with slide_context(st):
        for j in range(n):
            k = j // max(1, hold)
            az = azimuth + (360.0 * j / n if rotate else 0.0)
            snap = talk.result.run.snapshots[k]
            title = f"iteration {snap.iteration}  ·  loss {snap.loss:.3g}"
            frames.append(figure_to_rgb(scatter3d_figure(talk, k, st, az, elevation, title), dpi))
    return frames


def animation_frames(talk: Talk, name: str, style: str = "light", azimuth: float = 45.0, elevation: float = 25.0,
                     rotate: bool = False, hold: int = 4) -> list[np.ndarray]:
    """The RGB frames of "islands" (input beside map) or "tsne3d"; each snapshot shows for `hold` frames."""
    hold = max(1, hold)
    if name == "islands":
        return [f for f in islands_frames(talk, style) for _ in range(hold)]
    if name == "tsne3d":
        return tsne3d_frames(talk, style, azimuth, elevation, rotate, hold)
    raise ApmVizError(f"unknown animation {name!r}; choose islands or tsne3d")


ANIMATIONS = ("islands", "tsne3d")


# -- the command line's frames ---------------------------------------------------------

def frame_figure(image: np.ndarray, colors: np.ndarray, title: str, dark: bool = False):
    """The input beside its island map, for frames and animations (matplotlib Figure)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fg, bg = ("white", "#111111") if dark else ("black", "white")
    fig = Figure(figsize=(8, 4.4), dpi=100, facecolor=bg)
    axes = fig.subplots(1, 2)
    s = image.shape[0]
    axes[0].imshow(np.clip(image, 0, 1))
    axes[0].set_title("input", color=fg, fontsize=14)
    axes[1].imshow(upscale(colors, s))
    axes[1].set_title("APM islands", color=fg, fontsize=14)
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(title, color=fg, fontsize=15)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.84, wspace=0.04)
    return fig
