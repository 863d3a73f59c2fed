"""Shared fixtures: no network, small random-init models, the shipped samples."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
SAMPLE = ASSETS / "chelsea.jpg"


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
