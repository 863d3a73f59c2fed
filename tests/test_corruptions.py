"""ImageNet-C corruptions: every one at every severity, named exactly as applied."""

from importlib import metadata

import numpy as np
import pytest
from PIL import Image

from apm_viz.corruptions import (CLEAN, CORRUPTIONS, FORK_NOTES, GROUPS, corrupt, imagenet_c_frame, parse,
                                 parse_severities)
from apm_viz.errors import ApmVizError


def _photo(shape):
    """A smooth picture with an edge (noise-free, so every corruption shows)."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x / w, y / h, ((x + y) % 40 < 20) * 0.8 + 0.1], axis=-1)
    return (img * 255).astype(np.uint8)


def test_fifteen_in_table_order():
    assert len(CORRUPTIONS) == 15 and sum(len(g) for g in GROUPS.values()) == 15
    assert CORRUPTIONS[0] == "gaussian_noise" and CORRUPTIONS[-1] == "jpeg_compression"
    import imagecorruptions

    assert list(CORRUPTIONS) == imagecorruptions.get_corruption_names("common")


@pytest.mark.parametrize("shape", [(64, 64), (48, 80)])
def test_every_corruption_every_severity_keeps_shape_and_range(shape):
    img = _photo(shape)
    dist = "imagecorruptions-imaug"
    for name in CORRUPTIONS:
        for s in (1, 2, 3, 4, 5):
            out, applied = corrupt(img, name, s, seed=3)
            assert out.shape == img.shape and out.dtype == np.uint8, (name, s)
            assert 0 <= int(out.min()) and int(out.max()) <= 255
            assert not np.array_equal(out, img), (name, s)  # it did something
            assert applied.name == name and applied.severity == s and applied.seed == 3
            assert applied.library == dist and applied.version == metadata.version(dist)
            assert applied.function == f"imagecorruptions.corruptions.{name}"
            assert applied.note == FORK_NOTES.get(name, "")


def test_severity_grows_for_the_monotone_ones():
    img = _photo((64, 64)).astype(np.float64)
    for name in ("gaussian_noise", "contrast", "pixelate"):
        errs = [np.abs(corrupt(img.astype(np.uint8), name, s, seed=0)[0] - img).mean() for s in (1, 3, 5)]
        assert errs[0] < errs[1] < errs[2], (name, errs)


def test_seeded_and_leaves_numpys_generator_alone():
    img = _photo((64, 64))
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    for name in ("gaussian_noise", "impulse_noise", "frost", "glass_blur"):
        a, _ = corrupt(img, name, 3, seed=5)
        b, _ = corrupt(img, name, 3, seed=5)
        c, _ = corrupt(img, name, 3, seed=6)
        assert np.array_equal(a, b), name
        if name != "frost":  # frost may crop the same picture twice
            assert not np.array_equal(a, c), name
    assert np.array_equal(np.random.get_state()[1], before)


def test_clean_is_untouched_and_bad_input_is_one_line():
    img = _photo((64, 64))
    out, applied = corrupt(img, CLEAN, 0)
    assert out is img and applied.name == CLEAN and applied.library == ""
    for args in (("fog", 6), ("fogg", 3)):
        with pytest.raises(ApmVizError):
            corrupt(img, *args)
    with pytest.raises(ApmVizError, match="uint8"):
        corrupt(img.astype(np.float32), "fog", 1)
    with pytest.raises(ApmVizError, match="32x32"):
        corrupt(img[:20, :20], "fog", 1)


def test_parse():
    assert parse(None) == [CLEAN] and parse("none") == [CLEAN]
    assert parse("all") == list(CORRUPTIONS)
    assert parse("fog,clean,gaussian_noise") == [CLEAN, "gaussian_noise", "fog"]
    assert parse("noise") == ["gaussian_noise", "shot_noise", "impulse_noise"]
    with pytest.raises(ApmVizError, match="unknown corruption 'smoke'"):
        parse("fog,smoke")
    assert parse_severities("5") == [5] and parse_severities("3,1") == [1, 3]
    assert parse_severities("all") == [1, 2, 3, 4, 5]
    for bad in ("0", "6", "x", ""):
        with pytest.raises(ApmVizError):
            parse_severities(bad)


def test_imagenet_c_frame_is_resize_256_centre_224():
    img = Image.fromarray(_photo((300, 400)))
    frame = imagenet_c_frame(img)
    assert frame.shape == (224, 224, 3) and frame.dtype == np.uint8
    sq = img.crop((50, 0, 350, 300)).resize((256, 256), Image.Resampling.BILINEAR)
    assert np.array_equal(frame, np.asarray(sq)[16:240, 16:240])
