"""Shared fixtures: no network, small random-init models, the shipped samples.

The whole test session, and every process it starts, looks for weights in
empty caches of its own: a user's Hugging Face cache, torch hub cache or
weights folder must not decide what a test sees (`HF_HUB_OFFLINE` does not
stop cache lookups). huggingface_hub reads its cache paths when it is
imported, so they are set here, before any test module imports it.
"""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

if "huggingface_hub" in sys.modules:
    raise RuntimeError("huggingface_hub was imported before tests/conftest.py: its cache paths are the user's")
#: Root of this session's caches (removed when the session ends).
TEST_CACHES = Path(tempfile.mkdtemp(prefix="apm-viz-test-caches-"))
atexit.register(shutil.rmtree, TEST_CACHES, ignore_errors=True)
CACHE_ENV = {
    "HF_HOME": TEST_CACHES / "huggingface",
    "HF_HUB_CACHE": TEST_CACHES / "huggingface" / "hub",
    "HUGGINGFACE_HUB_CACHE": TEST_CACHES / "huggingface" / "hub",
    "TORCH_HOME": TEST_CACHES / "torch",
    "APM_VIZ_WEIGHTS_DIR": TEST_CACHES / "weights",
    "APM_VIZ_CACHE_DIR": TEST_CACHES / "apm-viz",
}
os.environ.update({k: str(v) for k, v in CACHE_ENV.items()})
os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
SAMPLE = ASSETS / "chelsea.jpg"


def laptop_parameters(grid: int, d: int) -> int:
    """The laptop preset's parameters counted by hand from its architecture
    (APM.md section 2, widths (T+256)-512-512-256, code 256, RGB head 256-256-3;
    no I_xy, mean pooling), for a grid x grid field and a d-wide teacher."""
    t = grid * grid  # the trigger column: one value per patch
    fold = 3 * 14 * 14 + 1  # Conv2d(3 -> 1, 14, stride 14)
    first = (t * 512 + 512) + 256 * 512  # [T | p] -> 512: W_T T + b, W_p p
    hidden = (512 * 512 + 512) + (512 * 256 + 256)
    head = 256 * d + d
    rgb = (t * 256 + 256) + 256 * 256 + d * 256 + (256 * 256 + 256) + (256 * 3 + 3)  # [f | T | p] -> 256 -> 256 -> 3
    return fold + first + hidden + head + rgb


@pytest.fixture(scope="session")
def sample_path() -> Path:
    return SAMPLE


@pytest.fixture(scope="session")
def small_teacher():
    """A 2-block random-init DINOv2-small: the real timm architecture, cheap to run."""
    from apm_viz.teachers import create_teacher

    return create_teacher("dinov2-small", weights="random", depth=2)


@pytest.fixture(scope="session")
def teacher_out16(small_teacher, sample_path):
    """The small teacher's view of the sample at a 16x16 grid."""
    from apm_viz.images import load_image
    from apm_viz.pipeline import encode

    return encode(load_image(sample_path), small_teacher, 16)


@pytest.fixture(scope="session")
def teacher_out32(small_teacher, sample_path):
    from apm_viz.images import load_image
    from apm_viz.pipeline import encode

    return encode(load_image(sample_path), small_teacher, 32)
