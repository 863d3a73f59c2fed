"""What a result was made from: settings, seed, image hash, package versions."""

from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = ("apm-viz", "torch", "torchvision", "timm", "numpy", "openTSNE", "scikit-learn", "plotly",
            "matplotlib", "pillow", "streamlit", "open_clip_torch", "imagecorruptions-imaug")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a result depends on."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
