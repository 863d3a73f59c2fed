"""Efficiency (the paper's Fig. 2): the APM's field time against the number of
locations computed at once, beside the teacher's forward and the paper's
GPU numbers. The measurements come from `efficiency`.
"""

from __future__ import annotations

from ..efficiency import PAPER_FIG2, Fig2Result
from .style import FONT


def fig2_figure(result: Fig2Result, paper: bool = True):
    """A plotly figure of a `Fig2Result`: APM field time against locations per
    pass (log-log), the teacher's forward as a flat line, and the paper's
    numbers beside them (dashed, labelled as measured on a GPU)."""
    import plotly.graph_objects as go

    xs = [t.chunk for t in result.field]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=[t.seconds for t in result.field], mode="lines+markers",
                             name=f"APM {result.preset}, {result.grid}x{result.grid} (this machine)",
                             text=["extrapolated" if t.extrapolated else "" for t in result.field],
                             hovertemplate="%{x} at once: %{y:.4g} s %{text}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[min(xs), max(xs)], y=[result.teacher_seconds] * 2, mode="lines",
                             name=f"teacher {result.teacher} forward (this machine)"))
    if paper:
        px, py = zip(*PAPER_FIG2["apm"])
        fig.add_trace(go.Scatter(x=px, y=py, mode="lines+markers", line=dict(dash="dash"),
                                 name="APM, paper (GPU)"))
        fig.add_trace(go.Scatter(x=[min(xs), max(xs)], y=[PAPER_FIG2["vit_b16_seconds"]] * 2, mode="lines",
                                 line=dict(dash="dash"), name="ViT-B/16, paper (GPU)"))
    fig.update_layout(font=FONT, xaxis=dict(type="log", title="locations processed at once"),
                      yaxis=dict(type="log", title="seconds for the whole image"),
                      margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25),
                      title=f"Fig. 2 on {result.device}, {result.threads} thread(s)")
    return fig
