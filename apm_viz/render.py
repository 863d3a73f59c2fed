"""Figures to bytes: matplotlib as PNG / SVG / PDF (fixed metadata, so the
same figure gives the same bytes) and as RGB frames; plotly through kaleido and
one shared local Chromium (with timeouts, never a download); frames as a GIF or
an MP4. This is the only module that writes pictures; every figure module and
the export use it.
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from .errors import ApmVizError
from .figures.style import Style, get_style, slide_context

FORMATS = ("png", "svg", "pdf")
ANIMATION_FORMATS = ("gif", "mp4")


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


def figure_file(build: Callable[[Style], "object"], fmt: str, style: str = "light", dpi: float = 200,
                width_px: Optional[int] = None) -> bytes:
    """Any slide figure builder as PNG / SVG / PDF bytes in a slide style.

    build: style -> matplotlib Figure (called inside the style's rc context, so
    fonts and colours follow it). width_px, when set, wins over dpi for PNGs."""
    st = get_style(style)
    with slide_context(st):
        fig = build(st)
        return matplotlib_to_bytes(fig, fmt, width_px / fig.get_size_inches()[0] if width_px else dpi)
