import io

import numpy as np
import pytest
from PIL import Image

from apm_viz.errors import ApmVizError
from apm_viz.images import load_image, pool_to_grid, to_array


def encode(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF"])
def test_formats_open_as_rgb(fmt):
    img = Image.fromarray((np.random.default_rng(0).random((40, 60, 3)) * 255).astype(np.uint8))
    loaded = load_image(encode(img, fmt))
    assert loaded.image.mode == "RGB" and loaded.image.size == (60, 40)


def test_modes_convert_to_rgb():
    for mode in ("L", "P", "RGBA", "LA", "CMYK", "I;16", "F"):
        img = Image.new(mode, (30, 30))
        fmt = "TIFF" if mode in ("I;16", "F", "CMYK") else "PNG"
        assert load_image(encode(img, fmt)).image.mode == "RGB"


def test_exif_orientation_applied():
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees
    loaded = load_image(encode(img, "JPEG", exif=exif))
    assert loaded.image.size == (20, 40)


def test_bad_inputs_raise_one_line():
    for data in (b"", b"hello", encode(Image.new("RGB", (5, 5)), "PNG")):
        with pytest.raises(ApmVizError) as err:
            load_image(data)
        assert "\n" not in str(err.value)


def test_to_array_and_pool():
    img = Image.new("RGB", (100, 60), (255, 128, 0))
    arr = to_array(img, 224)
    assert arr.shape == (224, 224, 3) and arr.dtype == np.float32
    pooled = pool_to_grid(arr, 16)
    assert pooled.shape == (16, 16, 3)
    assert pooled[..., 0].mean() == pytest.approx(1.0, abs=1e-3)
