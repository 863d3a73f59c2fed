"""Test-time classification, for the screen (plotly) and for slides (matplotlib).

What they show: the teacher's zero-shot top-5 beside the APM's at one
iteration; the top classes' probabilities over TTT iterations; for slides,
the clean and the corrupted image, the field's islands and both top-5s in
one row. Slide figures are true vectors (bars, curves, the island map as one
quad per location); photographs stay pictures.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..classify import TOP_K, ClassifyRun
from .maps import draw_map

TEACHER_COLOUR, APM_COLOUR = "#D55E00", "#0072B2"  # Okabe-Ito, as the slide palette (APM first)


def _short(label: str, n: int = 28) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


# -- screen ---------------------------------------------------------------------

def topk_figure(result: ClassifyRun, iteration: Optional[int], k: int = TOP_K):
    """Two horizontal bar charts, CLIP zero-shot and the APM at `iteration`, largest on top."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    apm = result.apm_topk(k, iteration) if result.globals else []
    it = result.iterations - 1 if iteration is None else min(iteration, result.iterations - 1)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.22,
                        subplot_titles=("CLIP zero-shot", f"APM at iteration {max(it, 0)}"))
    for col, (pairs, colour) in enumerate(((result.teacher_topk(k), TEACHER_COLOUR), (apm, APM_COLOUR)), 1):
        labels = [_short(lab) for lab, _ in pairs][::-1]
        probs = [p for _, p in pairs][::-1]
        fig.add_trace(go.Bar(x=probs, y=labels, orientation="h", marker_color=colour,
                             text=[f"{p:.1%}" for p in probs], textposition="auto",
                             hovertemplate="%{y}: %{x:.2%}<extra></extra>"), row=1, col=col)
        fig.update_xaxes(range=[0, 1], tickformat=".0%", row=1, col=col)
    fig.update_layout(height=260, margin=dict(l=10, r=10, t=40, b=10), showlegend=False)
    return fig


def curves_figure(result: ClassifyRun, classes: Optional[Sequence[int]] = None, current: Optional[int] = None):
    """The APM's probability of each class in `classes` (default `top_classes`) over iterations,
    with CLIP's zero-shot probability as a dotted level of the same colour."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    classes = list(classes if classes is not None else result.top_classes())
    probs = result.probs()
    its = np.arange(len(probs))
    fig = go.Figure()
    palette = qualitative.Safe
    for n, c in enumerate(classes):
        colour = palette[n % len(palette)]
        name = _short(result.labels[c])
        fig.add_trace(go.Scatter(x=its, y=probs[:, c], mode="lines", name=name, line=dict(color=colour, width=2),
                                 hovertemplate=f"{name}<br>iteration %{{x}}: %{{y:.2%}}<extra></extra>"))
        fig.add_trace(go.Scatter(x=[0, max(len(probs) - 1, 1)], y=[result.teacher_probs[c]] * 2, mode="lines",
                                 line=dict(color=colour, width=1, dash="dot"), showlegend=False,
                                 hovertemplate=f"{name}: CLIP zero-shot %{{y:.2%}}<extra></extra>"))
    if current is not None:
        fig.add_vline(x=current, line=dict(color="#888", width=1))
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="TTT iteration",
                      yaxis_title="probability", yaxis=dict(tickformat=".0%", rangemode="tozero"),
                      title=dict(text="APM (solid) and CLIP zero-shot (dotted)", font=dict(size=13)),
                      legend=dict(orientation="h", y=-0.25))
    return fig


# -- slides ---------------------------------------------------------------------

def _bars(ax, pairs, colour: str, title: str, style) -> None:
    from matplotlib.ticker import PercentFormatter

    labels = [_short(lab, 22) for lab, _ in pairs][::-1]
    probs = [p for _, p in pairs][::-1]
    ax.barh(range(len(probs)), probs, color=colour)
    ax.set_yticks(range(len(probs)), labels)
    ax.set_xlim(0, max(1e-6, max(probs, default=0)) * 1.25)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    for y, p in enumerate(probs):
        ax.text(p, y, f" {p:.0%}", va="center", color=style.foreground, fontsize=style.size * 0.7)
    ax.set_title(title, pad=10)
    ax.grid(axis="y", visible=False)


def _picture(ax, image: np.ndarray, title: str) -> None:
    ax.imshow(np.clip(image, 0, 1), interpolation="lanczos")
    ax.set_axis_off()
    ax.set_title(title, pad=10)


def _island_map(ax, colors: np.ndarray, title: str, style) -> None:
    draw_map(ax, colors, style)  # one vector quad per location, as on every other slide
    ax.set_title(title, pad=10)


def classification_slide(result: ClassifyRun, iteration: int, style, clean: Optional[np.ndarray] = None,
                         island_colors: Optional[np.ndarray] = None, note: str = ""):
    """One row: clean image | what CLIP saw | the field's islands | CLIP top-5 | APM top-5.

    clean: (H, W, 3) in [0, 1], shown only when a corruption was applied;
    island_colors: (h, w, 3) in [0, 1] at `iteration` (None leaves the map out).
    """
    from matplotlib.figure import Figure

    corrupted = result.applied.name != "clean"
    pics = ([(clean, "clean")] if corrupted and clean is not None else []) + \
        [(result.view.clip_image, f"{result.applied.name} {result.applied.severity}" if corrupted else "input")]
    cols = len(pics) + (island_colors is not None) + 2
    widths = [1.0] * (cols - 2) + [1.35, 1.35]
    fig = Figure(figsize=(3.9 * sum(widths), 4.6), dpi=100, facecolor=style.background)
    axes = fig.subplots(1, cols, gridspec_kw={"width_ratios": widths})
    for ax, (img, title) in zip(axes, pics):
        _picture(ax, img, title)
    if island_colors is not None:
        _island_map(axes[len(pics)], island_colors, f"APM field, iteration {iteration}", style)
    _bars(axes[-2], result.teacher_topk(TOP_K), style.palette[1], "CLIP zero-shot", style)
    _bars(axes[-1], result.apm_topk(TOP_K, iteration), style.palette[0], f"APM, iteration {iteration}", style)
    fig.subplots_adjust(left=0.01, right=0.97, bottom=0.1, top=0.8, wspace=0.55)
    title = f"Test-time classification  ·  {result.view.teacher.model}" + (f"  ·  {note}" if note else "")
    fig.suptitle(title, y=0.96)
    return fig


def curves_slide(result: ClassifyRun, style, classes: Optional[Sequence[int]] = None,
                 current: Optional[int] = None):
    """The top classes' probabilities over TTT iterations (APM solid, CLIP zero-shot dotted)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    classes = list(classes if classes is not None else result.top_classes())
    probs = result.probs()
    fig = Figure(figsize=(11.0, 5.5), dpi=100, facecolor=style.background)
    ax = fig.subplots()
    for n, c in enumerate(classes):
        colour = style.palette[n % len(style.palette)]
        ax.plot(np.arange(len(probs)), probs[:, c], color=colour, label=_short(result.labels[c], 22))
        ax.axhline(result.teacher_probs[c], color=colour, linestyle=":", linewidth=1.5)
    if current is not None:
        ax.axvline(current, color=style.muted, linewidth=1.2)
    ax.set_xlabel("TTT iteration")
    ax.set_ylabel("probability")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylim(bottom=0)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title("APM (solid) against CLIP zero-shot (dotted)")
    fig.subplots_adjust(left=0.1, right=0.72, bottom=0.15, top=0.88)
    return fig
