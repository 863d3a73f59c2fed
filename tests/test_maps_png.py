"""Pictures travel to the browser as PNG in a plotly image trace: the pixels a
person sees are the island map's colours, cell for cell, and far fewer bytes
than the array of numbers they replaced."""

import base64
import io

import numpy as np
import plotly.io as pio
from PIL import Image

from apm_viz.figures.maps import image_figure, island_map_figure


def shown_pixels(fig) -> np.ndarray:
    header, data = fig.data[0].source.split(",", 1)
    assert header == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


def test_an_island_map_shows_each_cell_in_its_colour():
    rng = np.random.default_rng(0)
    colors = rng.random((4, 4, 3))
    pic = shown_pixels(island_map_figure(colors, size=64))
    assert pic.shape == (64, 64, 3)
    # Cell (r, c) covers pixels [16r, 16r + 16) x [16c, 16c + 16), each its colour rounded to 8 bits.
    for r in range(4):
        for c in range(4):
            block = pic[16 * r:16 * r + 16, 16 * c:16 * c + 16].reshape(-1, 3)
            assert (block == np.round(colors[r, c] * 255)).all()


def test_the_picture_is_lossless_and_a_highlight_dims_the_rest():
    rng = np.random.default_rng(1)
    img = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    np.testing.assert_array_equal(shown_pixels(image_figure(img)), img)
    lit = np.zeros((2, 2), bool)
    lit[0, 0] = True
    pic = shown_pixels(image_figure(img, highlight=lit))
    np.testing.assert_array_equal(pic[:16, :16], img[:16, :16])
    np.testing.assert_array_equal(pic[16:, 16:], (img[16:, 16:] * 0.35).astype(np.uint8))


def test_a_32x32_map_is_a_few_kilobytes_not_the_array():
    rng = np.random.default_rng(2)
    # Islands: 6 flat regions on a 32x32 grid.
    labels = (np.arange(32)[:, None] // 11) * 2 + (np.arange(32)[None, :] // 16)
    colors = rng.random((6, 3))[labels]
    size = len(pio.to_json(island_map_figure(colors), validate=False))
    as_array = 448 * 448 * 3  # one byte per channel at the very least, as numbers in JSON
    assert size < as_array / 10, size
