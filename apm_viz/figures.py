"""Figures built from engine data: plotly for the app, matplotlib for files.

Every function takes plain arrays and returns a figure; none computes a model
or a projection. Grid locations are named "(row, col)" everywhere.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

FONT = dict(family="DejaVu Sans, Arial, sans-serif", size=14)


def upscale(colors: np.ndarray, size: int) -> np.ndarray:
    """(h, w, 3) in [0, 1] -> (size, size, 3) uint8, nearest neighbour (islands keep sharp edges)."""
    h, w = colors.shape[:2]
    ys = np.arange(size) * h // size
    xs = np.arange(size) * w // size
    return (np.clip(colors[ys][:, xs], 0, 1) * 255).round().astype(np.uint8)


def overlay(image: np.ndarray, colors: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Paint an island map (h, w, 3) over an image (S, S, 3) in [0, 1]; returns (S, S, 3) uint8."""
    s = image.shape[0]
    painted = upscale(colors, s).astype(np.float32) / 255.0
    return (np.clip((1 - alpha) * image + alpha * painted, 0, 1) * 255).round().astype(np.uint8)


def location_labels(h: int, w: int) -> list[str]:
    return [f"({r}, {c})" for r in range(h) for c in range(w)]


def _hex(colors: np.ndarray) -> list[str]:
    c = (np.clip(colors.reshape(-1, 3), 0, 1) * 255).round().astype(int)
    return [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in c]


# -- plotly (app) ---------------------------------------------------------------

def image_figure(image: np.ndarray, title: str = "", highlight: Optional[np.ndarray] = None):
    """An image (S, S, 3) in [0, 1] or uint8 as a plotly figure; `highlight`
    (h, w) bool lights up grid locations (selected points)."""
    import plotly.graph_objects as go

    img = image if image.dtype == np.uint8 else (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    if highlight is not None and highlight.any():
        s = img.shape[0]
        mask = upscale(np.repeat(highlight[..., None].astype(np.float32), 3, -1), s)[..., 0] > 0
        dim = (img * 0.35).astype(np.uint8)
        img = np.where(mask[..., None], img, dim)
    fig = go.Figure(go.Image(z=img, hoverinfo="skip"))
    fig.update_layout(title=title, margin=dict(l=0, r=0, t=30 if title else 0, b=0), font=FONT,
                      xaxis=dict(visible=False), yaxis=dict(visible=False), height=320)
    return fig


def island_map_figure(colors: np.ndarray, title: str = "", image: Optional[np.ndarray] = None,
                      alpha: float = 0.0, highlight: Optional[np.ndarray] = None, size: int = 448):
    """An island map (h, w, 3), optionally over the image; hover names each location."""
    import plotly.graph_objects as go

    h, w = colors.shape[:2]
    pic = overlay(image, colors, alpha) if (image is not None and alpha > 0) else upscale(colors, size)
    fig = image_figure(pic, title, highlight)
    s = pic.shape[0]
    # An invisible heatmap on top carries the per-location hover text.
    fig.add_trace(go.Heatmap(z=np.zeros((h, w)), x0=(s / w - 1) / 2, dx=s / w, y0=(s / h - 1) / 2, dy=s / h,
                             opacity=0, showscale=False, hovertemplate="location (%{customdata})<extra></extra>",
                             customdata=np.array([[f"{r}, {c}" for c in range(w)] for r in range(h)])))
    return fig


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


def error_map_figure(error: np.ndarray, title: str, unit: str, zmin: Optional[float] = None,
                     zmax: Optional[float] = None, height: int = 320):
    """A per-location error map (h, w) as a heatmap with a colour bar in `unit`.

    zmin/zmax: the colour range (default the map's own min and max, i.e. the
    paper's min-max scaling; a fixed range compares iterations). Hover gives
    the location and its raw value.
    """
    import plotly.graph_objects as go

    h, w = error.shape
    fig = go.Figure(go.Heatmap(z=error, zmin=float(error.min()) if zmin is None else zmin,
                               zmax=float(error.max()) if zmax is None else zmax, colorscale="Inferno",
                               colorbar=dict(title=dict(text=unit, side="right"), thickness=12),
                               hovertemplate="location (%{y}, %{x})<br>%{z:.4g} " + unit + "<extra></extra>"))
    fig.update_layout(title=title, margin=dict(l=0, r=0, t=30 if title else 0, b=0), font=FONT, height=height,
                      xaxis=dict(visible=False, constrain="domain"),
                      yaxis=dict(visible=False, autorange="reversed", scaleanchor="x"))
    return fig


# -- matplotlib (files) ------------------------------------------------------------

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


def figure_to_array(fig) -> np.ndarray:
    """Render a matplotlib Figure to an (H, W, 3) uint8 array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
