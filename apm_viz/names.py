"""File names and file types: a safe file name from any user-supplied name,
and the MIME type of each file ending the project writes.

Nothing here touches the file system.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Optional

#: The MIME type of each file ending written by the exports and downloads.
MIME = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf", "gif": "image/gif",
        "mp4": "video/mp4", "zip": "application/zip", "csv": "text/csv", "json": "application/json"}

_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def safe_filename(name: Optional[str], default: str = "image", max_len: int = 80) -> str:
    """A file name safe on every system from any user-supplied name.

    Drops folders (both separators), folds unicode to ASCII where it can,
    keeps [A-Za-z0-9._-], collapses the rest to "_", refuses hidden and
    reserved names, and keeps the extension when it shortens.
    "../../x y?.png" -> "x_y.png"; "" or "猫" -> default.
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
