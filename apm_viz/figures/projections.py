"""Projections of the field on screen: the 2-D or 3-D scatter of one frame,
points coloured as on the island map, hover naming each grid location, and
the 3-D camera from the app's azimuth and elevation sliders.

The slide versions of the Islands page's scatters are in `figures.islands`
(they read a finished run); they use the same camera.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .style import FONT


def location_labels(h: int, w: int) -> list[str]:
    return [f"({r}, {c})" for r in range(h) for c in range(w)]


def _hex(colors: np.ndarray) -> list[str]:
    c = (np.clip(colors.reshape(-1, 3), 0, 1) * 255).round().astype(int)
    return [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in c]


def scatter_figure(coords: np.ndarray, colors: np.ndarray, title: str = "", camera: Optional[dict] = None,
                   selected: Optional[Sequence[int]] = None, height: int = 420):
    """2-D or 3-D scatter of a projection frame, points coloured as on the grid.

    coords: (N, 2|3); colors: (h, w, 3). Hover names the location (row, col);
    customdata carries the flat index so a selection maps back to the grid.
    camera: plotly scene camera for 3-D (kept fixed across reruns).
    """
    import plotly.graph_objects as go

    h, w = colors.shape[:2]
    labels = location_labels(h, w)
    marker = dict(color=_hex(colors), size=4 if coords.shape[1] == 3 else 6, line=dict(width=0))
    idx = np.arange(coords.shape[0])
    if coords.shape[1] == 3:
        fig = go.Figure(go.Scatter3d(x=coords[:, 0], y=coords[:, 1], z=coords[:, 2], mode="markers",
                                     marker=marker, text=labels, customdata=idx,
                                     hovertemplate="location %{text}<extra></extra>"))
        fig.update_layout(scene=dict(xaxis=dict(visible=False), yaxis=dict(visible=False),
                                     zaxis=dict(visible=False), camera=camera or camera_from_angles(45, 25),
                                     aspectmode="cube"), uirevision="fixed")
    else:
        fig = go.Figure(go.Scatter(x=coords[:, 0], y=coords[:, 1], mode="markers", marker=marker,
                                   text=labels, customdata=idx, selectedpoints=selected,
                                   hovertemplate="location %{text}<extra></extra>"))
        fig.update_layout(xaxis=dict(visible=False), yaxis=dict(visible=False, scaleanchor="x"),
                          dragmode="lasso", plot_bgcolor="white")
    fig.update_layout(title=title, margin=dict(l=0, r=0, t=30 if title else 0, b=0), height=height,
                      font=FONT, showlegend=False)
    return fig


def camera_from_angles(azimuth: float, elevation: float, distance: float = 2.0) -> dict:
    """A plotly scene camera looking at the origin from (azimuth, elevation) in degrees."""
    az, el = np.radians(azimuth), np.radians(elevation)
    eye = dict(x=float(distance * np.cos(el) * np.cos(az)), y=float(distance * np.cos(el) * np.sin(az)),
               z=float(distance * np.sin(el)))
    return dict(eye=eye, up=dict(x=0, y=0, z=1), center=dict(x=0, y=0, z=0))
