"""Pictures and maps of the grid: the input image, island maps (h, w, 3) and
scalar maps such as an error map (h, w), on screen and on slides.

Screen (plotly, the app): `image_figure`, `island_map_figure` (hover names
each location), `error_map_figure`; pictures travel to the browser as PNG
(`png_data_uri`); `upscale` and `overlay` turn a map into pixels. Slides
(matplotlib, true vectors: one quad per grid location): `draw_map`,
`draw_image`, `draw_values`, `colorbar`, `under`, and `maps_figure`, the
input then a row of island maps (`Panel`), which the comparison pages'
slides build on. Grid locations are named "(row, col)".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..islands import islands_text
from .style import FONT, Style, new_figure


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


# -- screen (plotly) -----------------------------------------------------------------

def png_data_uri(image: np.ndarray) -> str:
    """(H, W, 3) uint8 -> "data:image/png;base64,..." (lossless; what a plotly image trace's `source` takes)."""
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image), "RGB").save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


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
    # A PNG in the trace, not an array of numbers: an island map's 448x448 pixels were 880 KB of JSON
    # per figure sent to the browser; as a PNG they are a few KB (a photograph about half its JSON).
    fig = go.Figure(go.Image(source=png_data_uri(img), hoverinfo="skip"))
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


# -- slides (matplotlib) ------------------------------------------------------------

def draw_map(ax, colors: np.ndarray, style: Style) -> None:
    """An island map (h, w, 3) as one vector quad per grid location (crisp in
    SVG/PDF at any zoom); row 0 at the top, as on the image."""
    h, w = colors.shape[:2]
    rgb = np.clip(colors, 0, 1).astype(np.float64)
    # Edges in each quad's own colour hide the hairline seams PDF viewers draw between touching quads.
    ax.pcolormesh(np.arange(w + 1), np.arange(h + 1), rgb, shading="flat", edgecolors=rgb.reshape(-1, 3),
                  linewidth=0.25, antialiased=False, rasterized=False)
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_aspect("equal")
    ax.set_axis_off()


def draw_image(ax, image: np.ndarray) -> None:
    ax.imshow(np.clip(image, 0, 1), interpolation="lanczos")
    ax.set_axis_off()


@dataclass(frozen=True)
class Panel:
    """One island map of a comparison row.

    colors: (h, w, 3) in [0, 1]; title: above it; islands: its island count
    (None: not counted), written under it."""

    colors: np.ndarray
    title: str
    islands: Optional[int] = None


def draw_values(ax, values: np.ndarray, cmap: str, vmin: float, vmax: float):
    """A scalar map (h, w) as one vector quad per location (as `draw_map`); returns the mesh for a colour bar."""
    h, w = values.shape
    mesh = ax.pcolormesh(np.arange(w + 1), np.arange(h + 1), np.asarray(values, np.float64), cmap=cmap,
                         vmin=vmin, vmax=vmax, shading="flat", edgecolors="face", linewidth=0.25,
                         antialiased=False, rasterized=False)
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_aspect("equal")
    ax.set_axis_off()
    return mesh


def under(ax, text: str, style: Style, color: Optional[str] = None) -> None:
    ax.text(0.5, -0.04, text, transform=ax.transAxes, ha="center", va="top", color=color or style.muted,
            fontsize=style.size * 0.85)


def colorbar(fig, ax, mesh, label: str, style: Style):
    """A slim colour bar beside `ax`, as tall as its (square) map, drawn as vectors."""
    ax.apply_aspect()
    box = ax.get_position()
    cax = fig.add_axes((box.x1 + 0.01, box.y0, 0.012, box.height))
    cb = fig.colorbar(mesh, cax=cax)
    # matplotlib rasterizes colour bars of 50 colours or more; a slide wants the vector.
    cb.solids.set_rasterized(False)
    cb.solids.set_edgecolor("face")
    cb.outline.set_edgecolor(style.muted)
    from matplotlib.ticker import MaxNLocator

    cax.yaxis.set_major_locator(MaxNLocator(4))
    cax.tick_params(colors=style.muted, labelsize=style.size * 0.75)
    cb.set_label(label, color=style.foreground, fontsize=style.size * 0.85)
    return cb


def maps_figure(image: np.ndarray, panels: Sequence[Panel], style: Style, title: Optional[str] = None,
                image_title: str = "input", extra: int = 0, size: Optional[tuple[float, float]] = None):
    """The input, then one island map per panel, in a row; `extra` empty slots
    are left at the end for the caller (e.g. an error map). Returns (fig, axes).

    image: (H, W, 3) in [0, 1]."""
    cols = 1 + len(panels) + extra
    fig = new_figure(style, size or (4.0 * cols, 5.0))
    axes = fig.subplots(1, cols, squeeze=False)[0]
    draw_image(axes[0], image)
    axes[0].set_title(image_title, pad=10)
    for ax, p in zip(axes[1:], panels):
        draw_map(ax, p.colors, style)
        ax.set_title(p.title, pad=10)
        if p.islands is not None:
            under(ax, islands_text(p.islands), style)
    top = 0.80 if title else 0.88
    fig.subplots_adjust(left=0.01, right=0.99 if not extra else 0.93, bottom=0.1, top=top, wspace=0.08)
    if title:
        fig.suptitle(title, y=0.965)
    return fig, axes
