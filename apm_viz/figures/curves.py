"""Curves over TTT iterations (loss, island counts) on screen, and the round
ticks of a log axis that the screen and the slide curves share.

Shapes: a series is [(iteration, value)].
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

import numpy as np

from .style import FONT


def curve_figure(series: dict[str, Sequence[tuple[float, float]]], title: str, y_title: str,
                 current: Optional[float] = None, log_y: bool = False, height: int = 280):
    """Line plot of named [(x, y)] series with the current iteration marked."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, pts in series.items():
        if len(pts):
            xs, ys = zip(*pts)
            fig.add_trace(go.Scatter(x=list(xs), y=list(ys), mode="lines+markers" if len(xs) < 40 else "lines",
                                     name=name))
    if current is not None:
        fig.add_vline(x=current, line=dict(color="#d62728", dash="dash"))
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10), font=FONT,
                      xaxis_title="TTT iteration", yaxis_title=y_title, yaxis_type="log" if log_y else "linear",
                      legend=dict(orientation="h", y=-0.3))
    return fig


def loss_curve(run, current: Optional[int] = None):
    """A run's loss over iterations (total, and each term when there are
    several) on a log axis; run: a `ttt.Run`."""
    return curve_figure(run.loss_series(), "loss", "MSE", current=current, log_y=True)


def islands_curve(counts: Sequence[tuple[int, int]], teacher: int, tau: float, current: Optional[int] = None):
    """Island count per snapshot, [(iteration, count)], beside the teacher's
    own count as a flat line over the same iterations."""
    ends = [(counts[0][0], teacher), (counts[-1][0], teacher)] if len(counts) else []
    return curve_figure({"APM": counts, "teacher": ends}, f"islands at τ = {tau:.2f}", "count", current=current)


def log_ticks(values: Iterable[float], most: int = 7) -> tuple[list[float], list[str]]:
    """Few, round ticks for a log axis over `values`: 1-2-5 steps over a
    decade or two, powers of ten (every k-th) beyond. Returns (values, labels)."""
    v = np.asarray([x for x in values if np.isfinite(x) and x > 0], float)
    if not v.size:
        return [], []
    lo, hi = np.floor(np.log10(v.min())), np.ceil(np.log10(v.max()))
    for mantissas in ((1, 2, 5), (1, 3), (1,)):
        ticks = [m * 10.0 ** e for e in np.arange(lo, hi + 1) for m in mantissas]
        ticks = [t for t in ticks if v.min() / 1.05 <= t <= v.max() * 1.05]
        if len(ticks) <= most:
            break
    else:
        step = int(np.ceil((hi - lo + 1) / most))
        ticks = [10.0 ** e for e in np.arange(lo, hi + 1, step) if v.min() / 1.05 <= 10.0 ** e <= v.max() * 1.05]
    if len(ticks) < 2:  # a very flat curve: its ends
        ticks = sorted({float(f"{v.min():.2g}"), float(f"{v.max():.2g}")})
    return ticks, [f"{t:g}" for t in ticks]
