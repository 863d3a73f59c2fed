"""Images: open, validate, orient, convert, crop and resize.

This is the only module that opens user files. Everything it returns is a
plain RGB `PIL.Image` or a float array; everything it refuses raises
`ApmVizError` with a one-line message.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from .errors import ApmVizError

#: Largest image accepted, in pixels (width * height), checked from the header
#: before the pixels are decoded. 40 MP covers every phone camera.
MAX_PIXELS = 40_000_000
#: Largest file accepted, in bytes. Matches `server.maxUploadSize` in
#: .streamlit/config.toml (in MB).
MAX_FILE_BYTES = 50 * 1024 * 1024
#: Smallest side accepted: below one patch there is nothing to see.
MIN_SIDE = 14
#: Largest side ratio accepted (a 10000x3 strip is not a picture).
MAX_ASPECT = 20.0
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")
#: File name endings every uploader of the app accepts: the usual ones of `FORMATS`.
UPLOAD_TYPES = ("png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif")

Source = Union[str, os.PathLike, bytes, BinaryIO]


@dataclass(frozen=True)
class LoadedImage:
    """A validated user image.

    image: RGB PIL image, EXIF orientation applied, full resolution.
    name: a display name (never used as a file name).
    sha256: hash of the file's bytes, for manifests and caching.
    """

    image: Image.Image
    name: str
    sha256: str


def _read_bytes(source: Source) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source), "upload"
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ApmVizError(f"no such image file: {path}")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ApmVizError(f"{path.name}: file is {size / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB")
        return path.read_bytes(), path.name
    data = source.read(MAX_FILE_BYTES + 1)
    return data, getattr(source, "name", "upload")


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any mode (palette, grey, alpha, CMYK, 16-bit, float) to 8-bit RGB."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        grey = _high_depth_to_8bit(np.asarray(img), mode)
        return Image.fromarray(np.stack([grey] * 3, axis=-1), "RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _high_depth_to_8bit(arr: np.ndarray, mode: str) -> np.ndarray:
    """(H, W) 16-bit, 32-bit int or float grey -> (H, W) uint8.

    Values are read on the range their type implies (0..65535 for 16-bit
    data, 0..1 for floats), so a flat mid-grey stays mid-grey; only values
    outside that range (32-bit counts, HDR floats) are stretched min to max.
    NaN and inf become black.
    """
    arr = arr.astype(np.float32)
    finite = np.isfinite(arr)
    lo, hi = (float(arr[finite].min()), float(arr[finite].max())) if finite.any() else (0.0, 1.0)
    if mode == "F":
        span = (0.0, 1.0) if lo >= 0.0 and hi <= 1.0 else (lo, hi)
    else:
        span = (0.0, 65535.0) if lo >= 0.0 and hi <= 65535.0 else (lo, hi)
    scaled = (arr - span[0]) / (span[1] - span[0] if span[1] > span[0] else 1.0)
    scaled[~finite] = 0.0
    return np.round(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def display_name(name: str, limit: int = 80) -> str:
    """A file name fit for a one-line message: no control characters, no
    line breaks, at most `limit` characters (the middle is elided)."""
    clean = "".join(ch if ch.isprintable() else " " for ch in str(name))
    clean = " ".join(clean.split()) or "upload"
    if len(clean) > limit:
        keep = (limit - 1) // 2
        clean = clean[:keep] + "…" + clean[-keep:]
    return clean


def _metadata_too_large(err: Exception) -> bool:
    """Pillow's refusal of a text or colour-profile chunk that inflates past
    PngImagePlugin.MAX_TEXT_CHUNK (or all of them past MAX_TEXT_MEMORY)."""
    text = str(err).lower()
    return isinstance(err, ValueError) and ("too large" in text or "too much memory" in text)


def load_image(source: Source, name: str | None = None) -> LoadedImage:
    """Open, validate and convert a user image.

    Accepts a path, raw bytes or a binary file object. Checks the declared
    size before decoding (decompression bombs), applies EXIF orientation,
    takes the first frame of animations, converts to RGB.
    Raises `ApmVizError` with a one-line message on anything else.
    """
    data, default_name = _read_bytes(source)
    name = display_name(name or default_name)
    if len(data) == 0:
        raise ApmVizError(f"{name}: the file is empty")
    if len(data) > MAX_FILE_BYTES:
        raise ApmVizError(f"{name}: file is over the {MAX_FILE_BYTES // 2**20} MB limit")
    try:
        # Pillow's own bomb check warns above 89 MP and raises above 179 MP; the
        # declared-size check below is stricter, so no process-wide warnings
        # filter is needed (catch_warnings is not thread-safe across sessions).
        img = Image.open(io.BytesIO(data), formats=FORMATS)
        w, h = img.size
        if w * h > MAX_PIXELS:
            raise ApmVizError(
                f"{name}: {w}x{h} is {w * h / 1e6:.0f} megapixels; the limit is {MAX_PIXELS / 1e6:.0f}")
        if min(w, h) < MIN_SIDE:
            raise ApmVizError(f"{name}: {w}x{h} is too small; each side needs at least {MIN_SIDE} pixels")
        if max(w, h) / min(w, h) > MAX_ASPECT:
            raise ApmVizError(f"{name}: {w}x{h} is too elongated (aspect over {MAX_ASPECT:.0f}:1)")
        img.seek(0)
        img.load()
        img = ImageOps.exif_transpose(img)
        rgb = _to_rgb(img)
        rgb.load()
    except ApmVizError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ApmVizError(f"{name}: the image declares a size over the {MAX_PIXELS / 1e6:.0f} megapixel limit") from None
    except UnidentifiedImageError:
        raise ApmVizError(f"{name}: not an image this app can read (PNG, JPEG, WebP, BMP, TIFF or GIF)") from None
    except Exception as err:  # any decoder failure is the file's fault, reported in one line
        if _metadata_too_large(err):
            raise ApmVizError(f"{name}: a metadata chunk (text or colour profile) inflates past "
                              f"{PngImagePlugin.MAX_TEXT_CHUNK // 2**20} MB; save the image again without "
                              "metadata") from None
        detail = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise ApmVizError(f"{name}: the image is damaged or unreadable ({detail})") from None
    return LoadedImage(rgb, name, hashlib.sha256(data).hexdigest())


def square_crop(img: Image.Image) -> Image.Image:
    """Centre-crop to a square (the APM grid is square)."""
    w, h = img.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return img.crop((left, top, left + s, top + s))


def to_array(img: Image.Image, size: int) -> np.ndarray:
    """Centre-crop and resize to (size, size, 3) float32 in [0, 1]."""
    sq = square_crop(img).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(sq, dtype=np.float32) / 255.0


def pool_to_grid(image: np.ndarray, grid: int) -> np.ndarray:
    """Average-pool an (S, S, 3) image to (grid, grid, 3); S must be a multiple of grid."""
    s = image.shape[0]
    if s % grid:
        raise ValueError(f"image size {s} is not a multiple of grid {grid}")
    k = s // grid
    return image.reshape(grid, k, grid, k, 3).mean(axis=(1, 3))
