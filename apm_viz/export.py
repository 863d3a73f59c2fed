"""Files for talks: every Islands figure as PNG / SVG / PDF, the TTT progression
as GIF / MP4, and one zip bundle that says how to make it again.

Figures are built from a finished run (`Talk`): the island map strip over
iterations, the input beside its island map, the 2-D and 3-D projections of one
frame, the loss and the island-count curves. Maps, the strip and the 3-D
scatter are matplotlib, so their SVG and PDF are real vectors (a plotly 3-D
figure exported by kaleido is a bitmap inside the file). The 2-D scatter and
the curves, which the app draws with plotly, go through kaleido when a
Chromium is installed; without one, the note says so and matplotlib draws them.

Everything here returns bytes or writes files; nothing imports streamlit.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
import threading
import unicodedata
import zipfile
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from .errors import ApmVizError
from .islands import Projection, project
from .pipeline import IslandsResult, _json_default, manifest, metrics

FORMATS = ("png", "svg", "pdf")
ANIMATION_FORMATS = ("gif", "mp4")
MIME = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf", "gif": "image/gif",
        "mp4": "video/mp4", "zip": "application/zip", "csv": "text/csv", "json": "application/json"}
ENGINES = ("auto", "matplotlib", "plotly")

#: The figures of the Islands page, in bundle order, with their size in inches
#: (width, height) for a 16:9 slide and a one-line description.
FIGURES = {
    "strip": ((16.0, 3.9), "input, then the island map at six iterations"),
    "pair": ((12.0, 6.6), "input beside its island map at the chosen iteration"),
    "tsne2d": ((8.0, 8.0), "2-D projection of the field at the chosen iteration"),
    "tsne3d": ((8.0, 8.0), "3-D projection of the field from the chosen camera"),
    "loss": ((10.0, 5.6), "TTT loss per iteration (log scale)"),
    "islands": ((10.0, 5.6), "island count per snapshot, with the teacher's"),
}
#: Figures the app draws with plotly; kaleido writes these when a Chromium exists.
PLOTLY_FIGURES = ("tsne2d", "loss", "islands")
#: Plotly layout pixels per inch of a figure's slide size (kaleido scale = dpi / this).
PLOTLY_PX_PER_INCH = 100


# -- slide style -------------------------------------------------------------------

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
def _mpl(style: Style):
    import matplotlib

    matplotlib.use("Agg")
    with matplotlib.rc_context(style.rc()):
        yield


# -- safe names --------------------------------------------------------------------

_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def safe_filename(name: Optional[str], default: str = "image", max_len: int = 80) -> str:
    """A file name safe on every system from any user-supplied name.

    Drops folders (both separators), folds unicode to ASCII where it can,
    keeps [A-Za-z0-9._-], collapses the rest to "_", refuses hidden and
    reserved names, and keeps the extension when it shortens.
    "../../x y?.png" -> "x_y_.png"; "" or "猫" -> default.
    """
    text = unicodedata.normalize("NFKD", str(name or "")).encode("ascii", "ignore").decode("ascii")
    text = re.split(r"[\\/]", text)[-1]
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", text)
    text = re.sub(r"_+", "_", text)
    stem, dot, ext = text.rpartition(".")
    if not dot:
        stem, ext = text, ""
    stem = stem.strip("._- ")
    ext = re.sub(r"[^A-Za-z0-9]", "", ext)[:10]
    if not stem or stem.lower().split(".")[0] in _RESERVED:
        stem = f"{default}_{stem}" if stem else default
    stem = stem[: max(1, max_len - len(ext) - 1)].rstrip("._-") or default
    return f"{stem}.{ext}" if ext else stem


def safe_stem(name: Optional[str], default: str = "image", max_len: int = 60) -> str:
    """safe_filename without the extension: "../My photo (1).JPG" -> "My_photo_1"."""
    safe = safe_filename(name, default, max_len)
    return safe.rsplit(".", 1)[0] if "." in safe else safe


# -- the run behind the figures -------------------------------------------------

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
        """Index of the snapshot at `iteration` (the last one taken before it; None: the last)."""
        its = self.iterations
        if not its:
            raise ApmVizError("this run has no snapshots to export")
        if iteration is None:
            return len(its) - 1
        before = [k for k, i in enumerate(its) if i <= iteration]
        return before[-1] if before else 0

    def stamp(self, k: int) -> str:
        snap = self.result.run.snapshots[k]
        return f"iteration {snap.iteration}  ·  loss {snap.loss:.3g}  ·  {self.result.islands[k][1]} islands"


def result_from_film(film, image, settings, tau: float, min_size: int, projection3d: Projection) -> IslandsResult:
    """An `IslandsResult` from an app film (`apm_viz.film.IslandsFilm`), so the
    app exports through the same code as the command line.

    settings must be the `pipeline.Settings` that `pipeline.compute` would need
    to recompute this film (the manifest records them)."""
    n = film.frames
    run = film.run
    if n < len(run.snapshots):
        run = replace(run, snapshots=run.snapshots[:n])
    counts = film.island_counts(tau, min_size)
    return IslandsResult(image, settings, film.teacher, run, projection3d, counts,
                         film.teacher_islands(tau, min_size), {"app": film.seconds})


# -- options ------------------------------------------------------------------------

@dataclass(frozen=True)
class ExportOptions:
    """How figures are drawn and written.

    style: "light" or "dark". dpi: PNG resolution; width_px, when set, wins and
    fixes each PNG's width in pixels. frame: iteration of the per-frame
    figures (None: the last snapshot). azimuth, elevation: 3-D camera in
    degrees (the app's sliders). rotate: the 3-D animation turns once around.
    engine: "auto" (plotly via kaleido where the app uses plotly and a Chromium
    exists, else matplotlib), "matplotlib" or "plotly". fps: animation frames
    per second; each snapshot shows for `hold` frames.
    """

    style: str = "light"
    dpi: int = 200
    width_px: Optional[int] = None
    frame: Optional[int] = None
    azimuth: float = 45.0
    elevation: float = 25.0
    rotate: bool = False
    engine: str = "auto"
    formats: tuple[str, ...] = FORMATS
    animations: tuple[str, ...] = ANIMATION_FORMATS
    fps: int = 10
    hold: int = 4

    def __post_init__(self):
        get_style(self.style)
        if self.engine not in ENGINES:
            raise ApmVizError(f"unknown engine {self.engine!r}; choose from {', '.join(ENGINES)}")
        for f in self.formats:
            if f not in FORMATS:
                raise ApmVizError(f"unknown figure format {f!r}; choose from {', '.join(FORMATS)}")
        for f in self.animations:
            if f not in ANIMATION_FORMATS:
                raise ApmVizError(f"unknown animation format {f!r}; choose from {', '.join(ANIMATION_FORMATS)}")
        if not 20 <= self.dpi <= 1200:
            raise ApmVizError("dpi must be between 20 and 1200")
        if self.width_px is not None and not 64 <= self.width_px <= 12000:
            raise ApmVizError("width in pixels must be between 64 and 12000")

    def dpi_for(self, width_in: float) -> float:
        return self.width_px / width_in if self.width_px else float(self.dpi)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ExportOptions":
        d = {k: v for k, v in (d or {}).items() if k in cls.__dataclass_fields__}
        for k in ("formats", "animations"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


# -- generic writers (any page may use these) ------------------------------------

def matplotlib_to_bytes(fig, fmt: str, dpi: Optional[float] = None) -> bytes:
    """A matplotlib Figure as PNG, SVG or PDF bytes. Dates are left out of
    SVG/PDF metadata so the same figure gives the same bytes."""
    if fmt not in FORMATS:
        raise ApmVizError(f"unknown figure format {fmt!r}; choose from {', '.join(FORMATS)}")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if fig.canvas is None or not hasattr(fig.canvas, "print_figure"):
        FigureCanvasAgg(fig)
    meta = {"png": {"Software": "apm-viz"}, "svg": {"Date": None, "Creator": "apm-viz"},
            "pdf": {"CreationDate": None, "ModDate": None, "Creator": "apm-viz"}}[fmt]
    import matplotlib

    buf = io.BytesIO()
    # Fixed SVG ids and embedded TrueType in PDF are read at save time, not when the figure is built.
    with matplotlib.rc_context({"svg.hashsalt": "apm-viz", "pdf.fonttype": 42}):
        fig.savefig(buf, format=fmt, dpi=dpi or fig.dpi, facecolor=fig.get_facecolor(), metadata=meta)
    return buf.getvalue()


def figure_to_rgb(fig, dpi: Optional[float] = None) -> np.ndarray:
    """A matplotlib Figure rendered to an (H, W, 3) uint8 array (an animation frame)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if dpi is not None:
        fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


class NoChromium(ApmVizError):
    """kaleido found no Chromium to draw plotly figures with."""


def find_chromium() -> Optional[str]:
    """The Chromium kaleido would drive ($BROWSER_PATH, then the usual names on
    PATH, e.g. Debian's /usr/bin/chromium), or None. Never downloads one."""
    path = None
    try:
        from choreographer.browsers.chromium import Chromium

        path = Chromium.find_browser(skip_local=False)
    except Exception:
        import shutil

        path = os.environ.get("BROWSER_PATH") or next(
            (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    return path if path and os.path.isfile(path) and os.access(path, os.X_OK) else None


#: Seconds kaleido may take to start its Chromium, and to draw one figure. A
#: browser that never answers then costs a fallback, not a hung export.
KALEIDO_START_TIMEOUT = 60.0
KALEIDO_RENDER_TIMEOUT = 60.0


class _KaleidoBrowser:
    """One Chromium driven by kaleido on its own event-loop thread; every call
    waits at most its timeout (kaleido's own sync server waits forever when the
    browser fails to start)."""

    def __init__(self):
        import asyncio

        import kaleido

        self._asyncio = asyncio
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="kaleido")
        self.thread.start()
        self.k = None

        async def open_browser():
            k = kaleido.Kaleido(n=1, timeout=KALEIDO_RENDER_TIMEOUT)
            await k.__aenter__()
            return k

        try:
            self.k = self._call(open_browser(), KALEIDO_START_TIMEOUT, "start")
        except BaseException:
            self.close()
            raise

    def _call(self, coro, timeout: float, what: str):
        import concurrent.futures

        fut = self._asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise NoChromium(f"kaleido's Chromium did not {what} within {timeout:.0f} s; "
                             "plotly figures are drawn with matplotlib instead") from None
        except NoChromium:
            raise
        except Exception as err:
            detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise NoChromium(f"kaleido failed to {what} ({detail}); plotly figures are drawn with matplotlib "
                             "instead") from None

    def render(self, fig_dict: dict, opts: dict) -> bytes:
        return self._call(self.k.calc_fig(fig_dict, opts=opts), KALEIDO_RENDER_TIMEOUT, "draw a figure")

    def close(self) -> None:
        if self.k is not None:
            try:
                self._call(self.k.__aexit__(None, None, None), 15.0, "close")
            except NoChromium:
                pass
            self.k = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5.0)


#: Held while the shared browser opens, closes or draws one figure; never across a session.
_KALEIDO_LOCK = threading.RLock()
_KALEIDO: list = [None, 0]  # the open browser, and how many sessions hold it


@contextmanager
def kaleido_session():
    """Keep one Chromium open for several plotly exports (about 0.3 s each
    instead of about 3 s with a browser per figure). Every thread's sessions
    share that browser and take turns figure by figure, so one user's bundle
    holds another's figure back by one figure at most. Raises `NoChromium`."""
    if find_chromium() is None:
        raise NoChromium(_no_chromium_message())
    with _KALEIDO_LOCK:
        if _KALEIDO[0] is None:
            _KALEIDO[0] = _KaleidoBrowser()
        _KALEIDO[1] += 1
    try:
        yield
    finally:
        with _KALEIDO_LOCK:
            _KALEIDO[1] -= 1
            if _KALEIDO[1] == 0 and _KALEIDO[0] is not None:
                _KALEIDO[0].close()
                _KALEIDO[0] = None


def _no_chromium_message() -> str:
    return ("no Chromium found for kaleido (install Debian's chromium package or set BROWSER_PATH); "
            "plotly figures are drawn with matplotlib instead")


def plotly_to_bytes(fig, fmt: str, width: int, height: int, scale: float = 1.0) -> bytes:
    """A plotly figure as PNG, SVG or PDF bytes through kaleido and the local
    Chromium. width, height: layout pixels; scale multiplies PNG pixels.
    Raises `NoChromium` when there is no browser to draw with (or it fails)."""
    if fmt not in FORMATS:
        raise ApmVizError(f"unknown figure format {fmt!r}; choose from {', '.join(FORMATS)}")
    from plotly.io._utils import validate_coerce_fig_to_dict

    fig_dict = validate_coerce_fig_to_dict(fig, True)
    opts = dict(format=fmt, width=int(width), height=int(height), scale=float(scale))
    with kaleido_session():
        with _KALEIDO_LOCK:
            return _KALEIDO[0].render(fig_dict, opts)


def _even_frames(frames: Sequence[np.ndarray], background) -> list[np.ndarray]:
    """Pad frames to one size, a multiple of 16 (H.264 wants even sides; 16
    keeps ffmpeg from rescaling)."""
    h = max(f.shape[0] for f in frames)
    w = max(f.shape[1] for f in frames)
    H, W = -(-h // 16) * 16, -(-w // 16) * 16
    out = []
    for f in frames:
        f = np.asarray(f)[..., :3].astype(np.uint8)
        canvas = np.empty((H, W, 3), np.uint8)
        canvas[:] = background
        y, x = (H - f.shape[0]) // 2, (W - f.shape[1]) // 2
        canvas[y:y + f.shape[0], x:x + f.shape[1]] = f
        out.append(canvas)
    return out


def animation_to_bytes(frames: Sequence[np.ndarray], fmt: str, fps: float = 10.0, hold_last: float = 1.5,
                       loop: bool = True) -> bytes:
    """A list of (H, W, 3) uint8 RGB frames as a GIF or an MP4 (H.264, yuv420p,
    plays in slides and browsers). The last frame stays `hold_last` seconds.

    MP4 goes through imageio's ffmpeg plugin with the ffmpeg binary that the
    imageio-ffmpeg wheel ships (nothing is downloaded)."""
    if fmt not in ANIMATION_FORMATS:
        raise ApmVizError(f"unknown animation format {fmt!r}; choose from {', '.join(ANIMATION_FORMATS)}")
    if not len(frames):
        raise ApmVizError("no frames to animate")
    fps = float(fps)
    bg = np.asarray(frames[0])[0, 0, :3]
    frames = _even_frames(frames, bg)
    if fmt == "gif":
        from PIL import Image

        pictures = [Image.fromarray(f) for f in frames]
        ms = int(round(1000 / fps))
        durations = [ms] * (len(pictures) - 1) + [ms + int(hold_last * 1000)]
        buf = io.BytesIO()
        pictures[0].save(buf, format="GIF", save_all=True, append_images=pictures[1:], duration=durations,
                         loop=0 if loop else 1, optimize=False, disposal=1)
        return buf.getvalue()
    import imageio.v2 as imageio

    extra = [frames[-1]] * int(round(hold_last * fps))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "animation.mp4")
        writer = imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=8,
                                    pixelformat="yuv420p", macro_block_size=16, ffmpeg_log_level="error",
                                    output_params=["-movflags", "+faststart"])
        try:
            for f in list(frames) + extra:
                writer.append_data(f)
        finally:
            writer.close()
        return Path(path).read_bytes()


def write_animation(frames: Sequence[np.ndarray], path, fps: float = 10.0, hold_last: float = 1.5) -> Path:
    """Write frames to `path`; the format follows its suffix (.gif or .mp4)."""
    path = Path(path)
    path.write_bytes(animation_to_bytes(frames, path.suffix.lstrip(".").lower(), fps, hold_last))
    return path


# -- matplotlib figures (slide style) ---------------------------------------------

def _new_figure(name: str, style: Style, size: Optional[tuple[float, float]] = None):
    from matplotlib.figure import Figure

    w, h = size or FIGURES[name][0]
    return Figure(figsize=(w, h), dpi=100, facecolor=style.background)


def _draw_map(ax, colors: np.ndarray, style: Style) -> None:
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


def _draw_image(ax, image: np.ndarray) -> None:
    ax.imshow(np.clip(image, 0, 1), interpolation="lanczos")
    ax.set_axis_off()


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
    fig = _new_figure("strip", style, (2.6 * cols, 3.9))
    axes = fig.subplots(1, cols)
    _draw_image(axes[0], res.teacher.image)
    axes[0].set_title("input", pad=10)
    for ax, k in zip(axes[1:], ks):
        _draw_map(ax, res.projection.colors[k], style)
        ax.set_title(f"iteration {res.run.snapshots[k].iteration}", pad=10)
        ax.text(0.5, -0.06, f"{res.islands[k][1]} islands", transform=ax.transAxes, ha="center", va="top",
                color=style.muted, fontsize=style.size * 0.85)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.12, top=0.86, wspace=0.06)
    return fig


def pair_figure(talk: Talk, k: int, style: Style):
    """The input beside its island map at snapshot k, the run's state stamped on top."""
    res = talk.result
    fig = _new_figure("pair", style)
    axes = fig.subplots(1, 2)
    _draw_image(axes[0], res.teacher.image)
    axes[0].set_title("input", pad=10)
    _draw_map(axes[1], res.projection.colors[k], style)
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
    return "t-SNE" if p.config.method == "tsne" else "PCA"


def _loss_series(talk: Talk) -> dict[str, list[tuple[int, float]]]:
    run = talk.result.run
    series = {"total": run.losses}
    if len(run.terms) > 1:
        series.update(run.terms)
    return series


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


def loss_figure(talk: Talk, style: Style, current: Optional[int] = None):
    fig = _new_figure("loss", style)
    ax = fig.add_subplot()
    for name, pts in _loss_series(talk).items():
        if pts:
            x, y = zip(*pts)
            ax.plot(x, y, label=name)
    ax.set_yscale("log")
    from matplotlib.ticker import NullLocator

    ticks, labels = log_ticks(y for pts in _loss_series(talk).values() for _, y in pts)
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


def matplotlib_figure(talk: Talk, name: str, options: ExportOptions):
    """The matplotlib Figure for one of `FIGURES`."""
    style = get_style(options.style)
    k = talk.frame_index(options.frame)
    it = talk.iterations[k]
    with _mpl(style):
        if name == "strip":
            return strip_figure(talk, style)
        if name == "pair":
            return pair_figure(talk, k, style)
        if name == "tsne2d":
            return scatter2d_figure(talk, k, style)
        if name == "tsne3d":
            return scatter3d_figure(talk, k, style, options.azimuth, options.elevation)
        if name == "loss":
            return loss_figure(talk, style, it)
        if name == "islands":
            return islands_figure(talk, style, it)
    raise ApmVizError(f"unknown figure {name!r}; choose from {', '.join(FIGURES)}")


# -- plotly figures (the app's own, restyled for slides) ---------------------------

def plotly_figure(talk: Talk, name: str, options: ExportOptions):
    """The app's plotly figure for one of `PLOTLY_FIGURES`, in the slide style."""
    from .figures import curve_figure, scatter_figure

    style = get_style(options.style)
    k = talk.frame_index(options.frame)
    it = talk.iterations[k]
    res = talk.result
    if name == "tsne2d":
        p = talk.projection2d
        fig = scatter_figure(p.coords[k], p.colors[k], f"2-D {_method(p)}  ·  iteration {it}")
        fig.update_traces(marker_size=np.sqrt(_point_size(len(p.coords[k]), 7.0)) * 100 / 72)
    elif name == "loss":
        fig = curve_figure(_loss_series(talk), "loss", "loss (MSE)", current=it, log_y=True)
        fig.update_traces(mode="lines")
        ticks, labels = log_ticks(y for pts in _loss_series(talk).values() for _, y in pts)
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


# -- one figure, any format ----------------------------------------------------------

@dataclass
class Exported:
    """One written figure: its bytes, which library drew it, and why (note)."""

    name: str
    fmt: str
    data: bytes
    engine: str
    note: str = ""

    @property
    def mime(self) -> str:
        return MIME[self.fmt]


def figure_bytes(talk: Talk, name: str, fmt: str, options: Optional[ExportOptions] = None) -> Exported:
    """One of `FIGURES` as PNG / SVG / PDF bytes.

    Plotly draws the app's plotly figures when the engine allows it and a
    Chromium exists; otherwise (and for maps, strip and 3-D) matplotlib does.
    """
    options = options or ExportOptions()
    if name not in FIGURES:
        raise ApmVizError(f"unknown figure {name!r}; choose from {', '.join(FIGURES)}")
    if fmt not in FORMATS:
        raise ApmVizError(f"unknown figure format {fmt!r}; choose from {', '.join(FORMATS)}")
    width_in = FIGURES[name][0][0]
    note = ""
    if name in PLOTLY_FIGURES and options.engine in ("auto", "plotly"):
        try:
            fig = plotly_figure(talk, name, options)
            scale = options.dpi_for(width_in) / PLOTLY_PX_PER_INCH
            return Exported(name, fmt, plotly_to_bytes(fig, fmt, fig.layout.width, fig.layout.height, scale),
                            "plotly")
        except NoChromium as err:
            note = str(err)
    elif options.engine == "plotly":
        note = f"{name}: drawn with matplotlib so that its SVG and PDF are vectors"
    fig = matplotlib_figure(talk, name, options)
    dpi = options.dpi_for(fig.get_size_inches()[0])
    return Exported(name, fmt, matplotlib_to_bytes(fig, fmt, dpi), "matplotlib", note)


# -- animations --------------------------------------------------------------------

def islands_frames(talk: Talk, style: str = "light", dpi: float = 100) -> list[np.ndarray]:
    """One RGB frame per snapshot: the input beside its island map, stamped
    with iteration, loss and island count."""
    st = get_style(style)
    frames = []
    with _mpl(st):
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
    with _mpl(st):
        for j in range(n):
            k = j // max(1, hold)
            az = azimuth + (360.0 * j / n if rotate else 0.0)
            snap = talk.result.run.snapshots[k]
            title = f"iteration {snap.iteration}  ·  loss {snap.loss:.3g}"
            frames.append(figure_to_rgb(scatter3d_figure(talk, k, st, az, elevation, title), dpi))
    return frames


def animation_frames(talk: Talk, name: str, options: Optional[ExportOptions] = None) -> list[np.ndarray]:
    """The RGB frames of "islands" (input beside map) or "tsne3d"; each snapshot shows for options.hold frames."""
    options = options or ExportOptions()
    hold = max(1, options.hold)
    if name == "islands":
        return [f for f in islands_frames(talk, options.style) for _ in range(hold)]
    if name == "tsne3d":
        return tsne3d_frames(talk, options.style, options.azimuth, options.elevation, options.rotate, hold)
    raise ApmVizError(f"unknown animation {name!r}; choose islands or tsne3d")


def animation_bytes(talk: Talk, name: str, fmt: str, options: Optional[ExportOptions] = None,
                    frames: Optional[list[np.ndarray]] = None) -> bytes:
    """"islands" (input beside map) or "tsne3d" as GIF or MP4 (frames: reuse ones already drawn)."""
    options = options or ExportOptions()
    if frames is None:
        frames = animation_frames(talk, name, options)
    return animation_to_bytes(frames, fmt, options.fps, hold_last=1.5)


ANIMATIONS = ("islands", "tsne3d")


# -- metrics, manifest, bundle --------------------------------------------------------

def metrics_csv(result: IslandsResult) -> str:
    """One row per iteration: loss, each loss term, and the island count where a snapshot was taken."""
    run = result.run
    terms = sorted(run.terms) if len(run.terms) > 1 else []
    by_term = {t: dict(run.terms[t]) for t in terms}
    islands = dict(result.islands)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["iteration", "loss", *[f"loss_{t}" for t in terms], "islands", "teacher_islands"])
    for i, loss in run.losses:
        w.writerow([i, repr(float(loss)), *[repr(float(by_term[t][i])) if i in by_term[t] else "" for t in terms],
                    islands.get(i, ""), result.teacher_islands if i in islands else ""])
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _input_file(talk: Talk) -> tuple[str, bytes]:
    img = talk.result.image
    if talk.image_bytes is not None and _sha(talk.image_bytes) == img.sha256:
        return "input/" + safe_filename(img.name, "image"), talk.image_bytes
    buf = io.BytesIO()
    img.image.save(buf, format="PNG")
    return "input/" + safe_stem(img.name, "image") + ".png", buf.getvalue()


README = """\
APM islands: a talk bundle
==========================

Image:    {image} (sha256 {sha})
Teacher:  {teacher}, weights from {source} ({detail})
Run:      preset {preset}, loss {loss}, {iters} TTT iterations, lr {lr}, grid {grid}x{grid}, seed {seed}
Islands:  {counts} (teacher: {teacher_islands}; tau {tau}, smallest island {min_size})
Style:    {style}; per-frame figures at iteration {frame}; 3-D camera azimuth {az}, elevation {el}

Files
-----
figures/      {figures}
              (PNG at {dpi}; SVG and PDF are vectors except the photo itself)
animations/   {animations}
metrics.csv   loss per iteration; island counts at the snapshots
metrics.json  the same, with the settings and the weight source
manifest.json settings, seed, image hash, teacher and weight source, package versions, file hashes
input/        the image the run was made from
{notes}
Reproduce
---------
    python -m apm_viz reproduce {bundle} --out DIR

recomputes the run from manifest.json and the bundled image (same settings, same
seed), writes the same figures to DIR and compares the metrics with these.
{weights_hint}"""


def bundle_name(talk: Talk) -> str:
    return f"{safe_stem(talk.result.image.name, 'image')}-talk"


def bundle_files(talk: Talk, options: Optional[ExportOptions] = None,
                 progress: Callable[[str], None] = lambda s: None) -> dict[str, bytes]:
    """Every file of the talk bundle, path (inside the bundle) -> bytes."""
    options = options or ExportOptions()
    res = talk.result
    files: dict[str, bytes] = {}
    notes: list[str] = []
    engines: dict[str, str] = {}
    k = talk.frame_index(options.frame)
    it = talk.iterations[k]
    names = {"strip": "strip", "pair": f"pair_iter_{it:04d}", "tsne2d": f"tsne2d_iter_{it:04d}",
             "tsne3d": f"tsne3d_iter_{it:04d}", "loss": "loss", "islands": "islands"}
    figure_options = options
    with ExitStack() as stack:
        if options.engine in ("auto", "plotly") and find_chromium() is not None:
            try:
                stack.enter_context(kaleido_session())
            except NoChromium as err:  # one failed start is enough: matplotlib draws the rest
                notes.append(str(err))
                figure_options = replace(options, engine="matplotlib")
        for name in FIGURES:
            for fmt in options.formats:
                progress(f"{name}.{fmt}")
                ex = figure_bytes(talk, name, fmt, figure_options)
                files[f"figures/{names[name]}.{fmt}"] = ex.data
                engines[name] = ex.engine
                if ex.note and ex.note not in notes:
                    notes.append(ex.note)
    for name in ANIMATIONS if options.animations else ():
        progress(f"{name} frames")
        frames = animation_frames(talk, name, options)
        for fmt in options.animations:
            progress(f"{name}.{fmt}")
            files[f"animations/{name}.{fmt}"] = animation_bytes(talk, name, fmt, options, frames)
    input_path, input_data = _input_file(talk)
    files[input_path] = input_data
    files["metrics.csv"] = metrics_csv(res).encode()
    files["metrics.json"] = json.dumps(metrics(res), indent=2, default=_json_default).encode()
    man = manifest(res)
    man["input_file"] = input_path
    man["input_file_sha256"] = _sha(input_data)
    man["export"] = {"options": options.to_dict(), "frame_iteration": it, "engines": engines, "notes": notes,
                     "files": {p: _sha(d) for p, d in sorted(files.items()) if p.startswith(("figures/",
                                                                                              "animations/"))}}
    files["manifest.json"] = json.dumps(man, indent=2, default=_json_default).encode()
    s = res.settings
    weights_hint = ""
    if res.teacher.weights.kind == "local":
        weights_hint = ("\nThe teacher's weights came from a local file; where it is not at the same path, "
                        "add --weights FILE.\n")
    elif res.teacher.weights.pretrained:
        weights_hint = ("\nThe teacher's weights came from Hugging Face; reproducing needs them in the cache "
                        "or the hub within reach (or --weights FILE).\n")
    files["README.txt"] = README.format(
        image=res.image.name, sha=res.image.sha256, teacher=res.teacher.model, source=res.teacher.weights.kind,
        detail=res.teacher.weights.detail, preset=s.ttt.preset, loss=s.ttt.loss, iters=s.ttt.iters, lr=s.ttt.lr,
        grid=s.grid, seed=s.ttt.seed, counts=", ".join(f"{i}: {c}" for i, c in res.islands),
        teacher_islands=res.teacher_islands, tau=s.tau, min_size=s.min_size, style=options.style, frame=it,
        az=options.azimuth, el=options.elevation,
        figures=", ".join(sorted({p.split("/")[1].rsplit(".", 1)[0] for p in files if p.startswith("figures/")})),
        dpi=f"{options.width_px} px wide" if options.width_px else f"{options.dpi} dpi",
        animations=", ".join(sorted(p.split("/")[1] for p in files if p.startswith("animations/"))) or "none",
        notes="".join(f"Note: {n}\n" for n in notes), bundle=bundle_name(talk) + ".zip",
        weights_hint=weights_hint).encode()
    return files


def zip_bytes(files: dict[str, bytes], root: str) -> bytes:
    """The files in one zip under the folder `root`; fixed dates, so the same
    files give the same zip."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(files):
            info = zipfile.ZipInfo(f"{root}/{path}", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED if path.endswith((".png", ".gif", ".mp4")) else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, files[path])
    return buf.getvalue()


def bundle_bytes(talk: Talk, options: Optional[ExportOptions] = None,
                 progress: Callable[[str], None] = lambda s: None) -> bytes:
    """The talk bundle as zip bytes (the app's download)."""
    return zip_bytes(bundle_files(talk, options, progress), bundle_name(talk))


def write_bundle(talk: Talk, out_dir, options: Optional[ExportOptions] = None,
                 progress: Callable[[str], None] = lambda s: None) -> Path:
    """Write out_dir/<image>-talk.zip and the same files unpacked in
    out_dir/<image>-talk/; returns the zip's path."""
    files = bundle_files(talk, options, progress)
    root = bundle_name(talk)
    out_dir = Path(out_dir)
    folder = out_dir / root
    for path, data in files.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    zpath = out_dir / f"{root}.zip"
    zpath.write_bytes(zip_bytes(files, root))
    return zpath


# -- reproduce ----------------------------------------------------------------------

@dataclass
class Bundle:
    """What `read_bundle` found: the manifest, the original metrics (when
    present) and the bundled input image bytes (when present)."""

    manifest: dict
    metrics: Optional[dict] = None
    image_bytes: Optional[bytes] = None
    source: str = ""


def read_bundle(path) -> Bundle:
    """Read a talk bundle (.zip) or a manifest.json (the image and metrics are
    looked up beside it)."""
    path = Path(path)
    if not path.is_file():
        raise ApmVizError(f"no such bundle or manifest: {path}")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith("manifest.json")]
            if not names:
                raise ApmVizError(f"{path.name}: no manifest.json in this zip")
            mpath = min(names, key=len)
            root = mpath[: -len("manifest.json")]
            man = _parse_manifest(z.read(mpath), path.name)
            read = lambda rel: z.read(root + rel) if root + rel in z.namelist() else None  # noqa: E731
            met = read("metrics.json")
            img = read(man.get("input_file", "")) if man.get("input_file") else None
    else:
        man = _parse_manifest(path.read_bytes(), path.name)
        folder = path.parent
        met_path = folder / "metrics.json"
        met = met_path.read_bytes() if met_path.is_file() else None
        img = None
        if man.get("input_file"):
            p = (folder / man["input_file"]).resolve()
            if folder.resolve() in p.parents and p.is_file():
                img = p.read_bytes()
    try:
        metrics_d = json.loads(met) if met else None
    except ValueError:
        metrics_d = None
    return Bundle(man, metrics_d, img, str(path))


def _parse_manifest(data: bytes, name: str) -> dict:
    try:
        man = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ApmVizError(f"{name}: not a JSON manifest") from None
    if not isinstance(man, dict) or "settings" not in man or "image" not in man:
        raise ApmVizError(f"{name}: not an apm-viz manifest (no settings or image)")
    return man


def compare_metrics(before: dict, after: dict, rtol: float = 1e-5) -> list[str]:
    """Differences between two metrics dicts (loss, loss terms, islands); empty when they agree."""
    diffs = []
    a, b = np.array(before.get("loss", []), float), np.array(after.get("loss", []), float)
    if a.shape != b.shape:
        diffs.append(f"loss has {len(b)} iterations, the bundle {len(a)}")
    elif a.size:
        rel = np.max(np.abs(a[:, 1] - b[:, 1]) / np.maximum(np.abs(a[:, 1]), 1e-30))
        if not np.array_equal(a[:, 0], b[:, 0]) or rel > rtol:
            diffs.append(f"loss differs (largest relative difference {rel:.2g})")
    if [list(x) for x in before.get("islands", [])] != [list(x) for x in after.get("islands", [])]:
        diffs.append(f"island counts differ: {before.get('islands')} then, {after.get('islands')} now")
    if before.get("teacher_islands") != after.get("teacher_islands"):
        diffs.append(f"teacher islands {before.get('teacher_islands')} then, {after.get('teacher_islands')} now")
    return diffs


def reproduce_settings(bundle: Bundle, weights: Optional[str] = None):
    """The run's `pipeline.Settings` from a manifest. A run made with a
    random-init teacher is remade with one (same seed) rather than with
    whatever weights this machine happens to have."""
    from .pipeline import Settings

    try:
        settings = Settings.from_dict(bundle.manifest["settings"])
    except (TypeError, ValueError, KeyError) as err:
        raise ApmVizError(f"the manifest's settings do not load ({err})") from None
    if weights is not None:
        return replace(settings, weights=weights)
    if bundle.manifest.get("teacher", {}).get("weights_source") == "random":
        return replace(settings, weights="random")
    return settings


def check_weights(bundle: Bundle, result: IslandsResult) -> None:
    """Refuse to call a run reproduced when the teacher's weights came from elsewhere."""
    then = bundle.manifest.get("teacher", {}).get("weights_source")
    now = result.teacher.weights.kind
    if then and then != "random" and now == "random":
        raise ApmVizError(f"the bundle's teacher had pretrained weights ({then}); none were found here: "
                          "name the file with --weights")


def files_report(bundle: Bundle, files: dict[str, bytes]) -> tuple[int, int]:
    """(identical, compared) figure and animation files, by hash against the manifest."""
    then = bundle.manifest.get("export", {}).get("files", {})
    same = sum(1 for p, h in then.items() if p in files and _sha(files[p]) == h)
    return same, len(then)


def summary_lines(result: IslandsResult) -> list[str]:
    return [f"loss fell {result.run.loss_drop():.3g}-fold; islands by iteration "
            + ", ".join(f"{i}:{c}" for i, c in result.islands) + f"; teacher {result.teacher_islands}"]



# -- the other pages' figures (plain arrays in, matplotlib Figures out) -------------

def figure_file(build: Callable[[Style], "object"], fmt: str, style: str = "light", dpi: float = 200,
                width_px: Optional[int] = None) -> bytes:
    """Any figure builder below as PNG / SVG / PDF bytes in a slide style.

    build: style -> matplotlib Figure (called inside the style's rc context, so
    fonts and colours follow it). width_px, when set, wins over dpi for PNGs."""
    st = get_style(style)
    with _mpl(st):
        fig = build(st)
        return matplotlib_to_bytes(fig, fmt, width_px / fig.get_size_inches()[0] if width_px else dpi)


@dataclass(frozen=True)
class Panel:
    """One island map of a comparison row.

    colors: (h, w, 3) in [0, 1]; title: above it; islands: its island count
    (None: not counted), written under it."""

    colors: np.ndarray
    title: str
    islands: Optional[int] = None


def _draw_values(ax, values: np.ndarray, cmap: str, vmin: float, vmax: float):
    """A scalar map (h, w) as one vector quad per location (as `_draw_map`); returns the mesh for a colour bar."""
    h, w = values.shape
    mesh = ax.pcolormesh(np.arange(w + 1), np.arange(h + 1), np.asarray(values, np.float64), cmap=cmap,
                         vmin=vmin, vmax=vmax, shading="flat", edgecolors="face", linewidth=0.25,
                         antialiased=False, rasterized=False)
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_aspect("equal")
    ax.set_axis_off()
    return mesh


def _under(ax, text: str, style: Style, color: Optional[str] = None) -> None:
    ax.text(0.5, -0.04, text, transform=ax.transAxes, ha="center", va="top", color=color or style.muted,
            fontsize=style.size * 0.85)


def _colorbar(fig, ax, mesh, label: str, style: Style):
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
    fig = _new_figure("maps", style, size or (4.0 * cols, 5.0))
    axes = fig.subplots(1, cols, squeeze=False)[0]
    _draw_image(axes[0], image)
    axes[0].set_title(image_title, pad=10)
    for ax, p in zip(axes[1:], panels):
        _draw_map(ax, p.colors, style)
        ax.set_title(p.title, pad=10)
        if p.islands is not None:
            _under(ax, f"{p.islands} islands", style)
    top = 0.80 if title else 0.88
    fig.subplots_adjust(left=0.01, right=0.99 if not extra else 0.93, bottom=0.1, top=top, wspace=0.08)
    if title:
        fig.suptitle(title, y=0.965)
    return fig, axes


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
    _under(axes[1], teacher, style)
    _under(axes[2], "same colours as the teacher", style)
    mesh = _draw_values(axes[3], error, "inferno", lo, hi)
    scaled = vmin is None and vmax is None
    axes[3].set_title("error" + (" (min-max)" if scaled else ""), pad=10)
    _colorbar(fig, axes[3], mesh, unit, style)
    return fig


def boring_video_figure(image: np.ndarray, mvit: Panel, dino: Panel, style: Style, apm: Optional[Panel] = None,
                        title: Optional[str] = None):
    """The boring-video comparison: input | MViTv2 islands | APM islands |
    DINOv2 islands, each with its island count; without an APM run the APM
    panel is left out. image: (224, 224, 3), the frame MViTv2 saw 16 times."""
    panels = [mvit] + ([apm] if apm is not None else []) + [dino]
    fig, _ = maps_figure(image, panels, style, title, image_title="input (16 frames)")
    return fig


def _walk_label(i: int, n: int) -> tuple[str, bool]:
    """'i = 3/8' (ends marked A and B) and whether the step extrapolates past an end."""
    tag = "  A" if i == 0 else "  B" if i == n else ""
    return f"i = {i}/{n}{tag}", i < 0 or i > n


def interpolation_figure(frames: np.ndarray, steps: Sequence[int], n: int, style: Style,
                         islands: Optional[np.ndarray] = None, counts: Optional[Sequence[int]] = None,
                         names: Optional[Sequence[str]] = None, max_cols: int = 12):
    """The walk v_i = v1 + (v2 − v1) i / n as a strip: the decoded RGB frame of
    every step, labelled i/n, and optionally its islands (one colour space
    for the whole walk) in a row under it. More than `max_cols` steps wrap.

    frames: (K, H, W, 3) in [0, 1]; steps: the K values of i; islands:
    (K, h, w, 3) or None; counts: K island counts; names: (A, B) for the title.
    Extrapolated steps (i < 0 or i > n) are labelled in the accent colour."""
    k = len(frames)
    if k == 0 or len(steps) != k:
        raise ApmVizError("the strip needs one step i per frame")
    if islands is not None and len(islands) != k:
        raise ApmVizError("the islands row needs one map per frame")
    chunks = -(-k // max_cols)
    cols = -(-k // chunks)  # rows as even as they come: 13 steps wrap as 7 + 6, not 12 + 1
    per = 2 if islands is not None else 1
    gap = 0.1
    tile = min(1.8, (15.6 - (cols - 1) * gap) / cols)
    label_in = 0.55
    row_h = tile + label_in
    title_in = 0.9 if names else 0.2
    w, h = 16.0, title_in + chunks * per * row_h + 0.1
    fig = _new_figure("interpolation", style, (w, h))
    x0 = (w - cols * tile - (cols - 1) * gap) / 2
    for j in range(k):
        r, c = divmod(j, cols)
        label, extra = _walk_label(int(steps[j]), n)
        for row in range(per):
            y = h - title_in - (r * per + row + 1) * row_h
            ax = fig.add_axes(((x0 + c * (tile + gap)) / w, y / h, tile / w, tile / h))
            if row == 0:
                _draw_map(ax, frames[j], style)
                ax.set_title(label, fontsize=style.size * 0.75, pad=6,
                             color=style.palette[1] if extra else style.foreground,
                             fontweight="bold" if int(steps[j]) in (0, n) else "normal")
            else:
                _draw_map(ax, islands[j], style)
                if counts is not None:
                    ax.set_title(f"{counts[j]} islands", fontsize=style.size * 0.7, pad=6, color=style.muted)
    if names:
        a, b = names[0], names[1]
        sub = "decoded frames" + (", and their islands below" if islands is not None else "")
        fig.suptitle(f"A: {a}  →  B: {b}", y=1 - 0.3 / h, va="center")
        fig.text(0.5, 1 - 0.72 / h, sub, ha="center", va="center", color=style.muted, fontsize=style.size * 0.75)
    return fig


def walk_frames(frames: np.ndarray, steps: Sequence[int], n: int, style: str = "light",
                islands: Optional[np.ndarray] = None, names: Optional[Sequence[str]] = None, bounce: bool = True,
                dpi: float = 100) -> list[np.ndarray]:
    """The walk as animation frames (H, W, 3) uint8, each stamped with its i/n:
    the decoded RGB frame, beside its islands when given. bounce: forwards then
    backwards (K + K − 2 frames), so a loop has no jump from B back to A."""
    st = get_style(style)
    k = len(frames)
    if k == 0 or len(steps) != k:
        raise ApmVizError("the walk needs one step i per frame")
    drawn = []
    with _mpl(st):
        for j in range(k):
            cols = 2 if islands is not None else 1
            fig = _new_figure("walk", st, (5.6 * cols, 6.6))
            axes = fig.subplots(1, cols, squeeze=False)[0]
            _draw_map(axes[0], frames[j], st)
            if islands is not None:  # alone, the frame needs no name
                axes[0].set_title("decoded RGB", pad=8, color=st.muted, fontsize=st.size * 0.85)
                _draw_map(axes[1], islands[j], st)
                axes[1].set_title("islands", pad=8, color=st.muted, fontsize=st.size * 0.85)
            label, extra = _walk_label(int(steps[j]), n)
            if extra:
                label += "  (extrapolated)"
            fig.suptitle(label, y=0.96, color=st.palette[1] if extra else st.foreground, fontsize=st.size * 1.15)
            if names:
                fig.text(0.5, 0.885, f"{names[0]} → {names[1]}", ha="center", va="center", color=st.muted,
                         fontsize=st.size * 0.75)
            fig.subplots_adjust(left=0.03, right=0.97, bottom=0.03, top=0.82 if islands is not None else 0.85,
                                wspace=0.06)
            drawn.append(figure_to_rgb(fig, dpi))
    order = list(range(k))
    if bounce and k > 2:
        order += order[-2:0:-1]
    return [drawn[j] for j in order]


def walk_animation_bytes(frames: np.ndarray, steps: Sequence[int], n: int, fmt: str, style: str = "light",
                         islands: Optional[np.ndarray] = None, names: Optional[Sequence[str]] = None,
                         fps: float = 6.0, bounce: bool = True) -> bytes:
    """The interpolation walk as GIF or MP4 (see `walk_frames`); a bouncing
    loop does not pause at its last frame, a one-way walk holds B for 1 s."""
    pictures = walk_frames(frames, steps, n, style, islands, names, bounce)
    return animation_to_bytes(pictures, fmt, fps, hold_last=0.0 if bounce else 1.0)
