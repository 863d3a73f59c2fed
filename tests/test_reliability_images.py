"""Bad and odd images: a corpus generated here (no binary files in the repo).

Every bad file gives one line (`ApmVizError` in the engine, exit 2 in the
command line); every odd but valid file gives a correct 8-bit RGB image.
The app's handling of the same corpus is in test_reliability_app.py.
"""

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from apm_viz import cli
from apm_viz.errors import ApmVizError
from apm_viz.images import MAX_FILE_BYTES, MAX_PIXELS, display_name, load_image

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)


# -- building blocks ------------------------------------------------------------

def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def raw_png(w: int, h: int, depth: int, color_type: int, rows: list, before_idat: bytes = b"",
            after_idat: bytes = b"") -> bytes:
    """A PNG written byte by byte, so its header and chunks can say anything."""
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0)
    idat = zlib.compress(b"".join(b"\0" + r for r in rows))
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + before_idat + png_chunk(b"IDAT", idat)
            + after_idat + png_chunk(b"IEND", b""))


def gradient(w: int = 40, h: int = 30) -> np.ndarray:
    """(h, w, 3) uint8: red grows left to right, green top to bottom."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 100)], -1).astype(np.uint8)


def quadrants(w: int = 48, h: int = 32) -> np.ndarray:
    """(h, w, 3) uint8: red | green over blue | yellow."""
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, : w // 2], a[: h // 2, w // 2 :] = RED, GREEN
    a[h // 2 :, : w // 2], a[h // 2 :, w // 2 :] = BLUE, YELLOW
    return a


def gradient_rows() -> list:
    return [row.tobytes() for row in gradient()]


def inflating_text(tag: bytes) -> bytes:
    """A text / profile chunk of ~200 KB that inflates to 200 MB."""
    bomb = zlib.compress(b"A" * (200 * 2**20), 9)
    header = {b"zTXt": b"Comment\0\0", b"iTXt": b"Comment\0\1\0\0\0", b"iCCP": b"icc\0\0"}[tag]
    return png_chunk(tag, header + bomb)


def _good_png() -> bytes:
    return encode(Image.fromarray(gradient()), "PNG")


def _good_jpeg() -> bytes:
    return encode(Image.fromarray(gradient()), "JPEG", quality=95)


# -- the corpus: name -> (file name a user would have, bytes) -------------------

def _bad_corpus() -> dict:
    big_meta = {tag: inflating_text(tag) for tag in (b"zTXt", b"iTXt", b"iCCP")}
    return {
        "empty": ("empty.png", b""),
        "truncated PNG": ("cut.png", _good_png()[: len(_good_png()) // 2]),
        "truncated JPEG": ("cut.jpg", _good_jpeg()[: len(_good_jpeg()) // 2]),
        "text named .png": ("notes.png", b"this is a shopping list, not a picture\n" * 20),
        "SVG": ("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
                            b'<rect width="100" height="100" fill="red"/></svg>'),
        "bomb 100000x100000": ("bomb.png", raw_png(100_000, 100_000, 8, 2, [b"\0" * 10])),
        "bomb 8000x8000": ("big.png", raw_png(8000, 8000, 8, 2, [b"\0" * 10])),
        "1x1": ("dot.png", encode(Image.new("RGB", (1, 1), RED), "PNG")),
        "10000x3": ("strip.png", encode(Image.new("RGB", (10_000, 3), RED), "PNG")),
        "10000x14": ("ribbon.png", encode(Image.new("RGB", (10_000, 14), RED), "PNG")),
        "huge zTXt": ("meta-z.png", raw_png(40, 30, 8, 2, gradient_rows(), before_idat=big_meta[b"zTXt"])),
        "huge iTXt": ("meta-i.png", raw_png(40, 30, 8, 2, gradient_rows(), before_idat=big_meta[b"iTXt"])),
        "huge zTXt after pixels": ("meta-late.png", raw_png(40, 30, 8, 2, gradient_rows(),
                                                             after_idat=big_meta[b"zTXt"])),
        "huge iCCP": ("profile.png", raw_png(40, 30, 8, 2, gradient_rows(), before_idat=big_meta[b"iCCP"])),
    }


BAD = _bad_corpus()
#: What each bad case's message must say (besides the file name).
BAD_SAYS = {
    "empty": "empty", "truncated PNG": "damaged", "truncated JPEG": "damaged",
    "text named .png": "not an image", "SVG": "not an image", "bomb 100000x100000": "megapixel",
    "bomb 8000x8000": "megapixels", "1x1": "too small", "10000x3": "too small", "10000x14": "elongated",
    "huge zTXt": "metadata", "huge iTXt": "metadata", "huge zTXt after pixels": "metadata", "huge iCCP": "metadata",
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_image_gives_one_line(case):
    filename, data = BAD[case]
    with pytest.raises(ApmVizError) as err:
        load_image(data, name=filename)
    msg = str(err.value)
    assert "\n" not in msg and len(msg) < 300
    assert msg.startswith(filename + ":")
    assert BAD_SAYS[case] in msg
    assert "Traceback" not in msg and "PngImagePlugin" not in msg


@pytest.mark.parametrize("case", list(BAD))
def test_cli_exits_2_with_one_line(case, tmp_path, capsys):
    filename, data = BAD[case]
    path = tmp_path / filename
    path.write_bytes(data)
    rc = cli.main(["islands", str(path), "--out", str(tmp_path / "out"), "--offline", "--grid", "16",
                   "--iters", "1"])
    captured = capsys.readouterr()
    assert rc == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {filename}:")
    assert not (tmp_path / "out").exists()


# -- odd but valid files: the right pixels --------------------------------------

def rgb(data: bytes, name: str = "x") -> np.ndarray:
    loaded = load_image(data, name=name)
    assert loaded.image.mode == "RGB"
    return np.asarray(loaded.image).astype(int)


def test_16bit_tiff_uses_the_full_16bit_range():
    ramp = np.linspace(0, 65535, 30 * 40).reshape(30, 40).astype(np.uint16)
    out = rgb(encode(Image.fromarray(ramp), "TIFF"))
    assert out.shape == (30, 40, 3)
    np.testing.assert_allclose(out[..., 0], ramp / 257.0, atol=1)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    # A flat mid-grey stays mid-grey (stretching min..max would turn it black).
    flat = rgb(encode(Image.fromarray(np.full((30, 40), 32768, np.uint16)), "TIFF"))
    assert (flat == 128).all()


def test_16bit_png_grey_and_rgb():
    grey = raw_png(40, 30, 16, 0, [np.full(40, 16384, ">u2").tobytes()] * 30)
    assert (rgb(grey) == 64).all()
    colour = raw_png(40, 30, 16, 2, [np.tile(np.array([65535, 0, 32768], ">u2"), 40).tobytes()] * 30)
    assert (rgb(colour) == [255, 0, 128]).all()


def test_float_tiff():
    ramp = np.linspace(0, 1, 30 * 40, dtype=np.float32).reshape(30, 40)
    out = rgb(encode(Image.fromarray(ramp), "TIFF"))
    np.testing.assert_allclose(out[..., 0], ramp * 255, atol=1)
    assert (rgb(encode(Image.fromarray(np.full((30, 40), 0.5, np.float32)), "TIFF")) == 128).all()
    # Out-of-range values (HDR) are stretched; NaN and inf become black instead of poisoning the image.
    hdr = np.linspace(-3, 7, 30 * 40, dtype=np.float32).reshape(30, 40)
    hdr[0, 0], hdr[0, 1], hdr[0, 2] = np.nan, np.inf, -np.inf
    out = rgb(encode(Image.fromarray(hdr), "TIFF"))
    assert out[0, :3].max() == 0 and out[-1, -1, 0] == 255 and out[0, 3, 0] < 5


def test_cmyk_jpeg_is_converted():
    out = rgb(encode(Image.new("CMYK", (40, 30), (0, 255, 255, 0)), "JPEG", quality=95))
    assert np.abs(out - RED).max() <= 3


def test_palette_with_transparency_is_composited_on_white():
    pal = Image.new("P", (40, 30), 0)
    pal.putpalette([0, 0, 0, *RED] + [0] * 762)
    pal.paste(1, (20, 0, 40, 30))
    out = rgb(encode(pal, "PNG", transparency=0))
    assert (out[:, :20] == 255).all()  # transparent black -> white, not black
    assert (out[:, 20:] == RED).all()


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (40, 30), c) for c in (RED, GREEN, BLUE)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    out = rgb(data)
    assert out.shape == (30, 40, 3) and (out == RED).all()


@pytest.mark.parametrize("orientation, corners", [
    (1, (RED, GREEN, BLUE, YELLOW)),
    (3, (YELLOW, BLUE, GREEN, RED)),   # rotated 180
    (6, (BLUE, RED, YELLOW, GREEN)),   # shown rotated 90 clockwise
    (8, (GREEN, YELLOW, RED, BLUE)),   # shown rotated 90 counter-clockwise
])
def test_exif_orientation_is_applied(orientation, corners):
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = rgb(encode(Image.fromarray(quadrants()), "JPEG", exif=exif, quality=95))
    h, w = out.shape[:2]
    assert (h, w) == ((32, 48) if orientation in (1, 3) else (48, 32))
    seen = [out[2, 2], out[2, w - 3], out[h - 3, 2], out[h - 3, w - 3]]  # TL, TR, BL, BR
    for got, want in zip(seen, corners):
        assert np.abs(got - want).max() < 40


def test_nonsense_exif_orientation_is_ignored():
    exif = Image.Exif()
    exif[0x0112] = 99
    out = rgb(encode(Image.fromarray(quadrants()), "JPEG", exif=exif, quality=95))
    assert out.shape == (32, 48, 3) and np.abs(out[2, 2] - RED).max() < 40


def test_large_plain_text_chunk_still_loads():
    # 20 MB of uncompressed tEXt: no inflation, so the pixels are read and the metadata ignored.
    chunk = png_chunk(b"tEXt", b"Comment\0" + b"A" * (20 * 2**20))
    out = rgb(raw_png(40, 30, 8, 2, gradient_rows(), before_idat=chunk))
    assert (out == gradient()).all()


def test_smallest_and_thinnest_accepted_sizes():
    assert rgb(encode(Image.new("RGB", (14, 14), RED), "PNG")).shape == (14, 14, 3)
    assert rgb(encode(Image.new("RGB", (280, 14), RED), "PNG")).shape == (14, 280, 3)


# -- sources that are not plain files --------------------------------------------

def test_oversized_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.png"
    with open(path, "wb") as f:  # sparse: costs no disk
        f.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(ApmVizError, match="limit is 50 MB"):
        load_image(path)


def test_oversized_stream_is_refused():
    with pytest.raises(ApmVizError, match="over the 50 MB limit"):
        load_image(io.BytesIO(b"\0" * (MAX_FILE_BYTES + 1)))


def test_fifo_and_folder_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # reading it would block forever
    for path in (fifo, tmp_path):
        with pytest.raises(ApmVizError, match="no such image file"):
            load_image(path)


def test_hostile_file_names_stay_one_short_line():
    name = "evil\nname\r\x1b[31m" + "x" * 500 + ".png"
    with pytest.raises(ApmVizError) as err:
        load_image(b"not an image", name=name)
    msg = str(err.value)
    assert "\n" not in msg and "\r" not in msg and "\x1b" not in msg and len(msg) < 200
    assert display_name("a\tb\n c") == "a b c" and display_name("") == "upload"


def test_limits_are_consistent():
    assert MAX_PIXELS < Image.MAX_IMAGE_PIXELS  # our check, not Pillow's warning, decides
