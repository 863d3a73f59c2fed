"""The boring video: torchvision's MViTv2-S, random init, one forward for the whole module."""

import numpy as np
import pytest
import torch

from apm_viz.errors import ApmVizError
from apm_viz.images import load_image
from apm_viz.video import (BLOCK_GRIDS, FRAMES, FRAMES_IN, SIDE, boring_clip, cached_weights_path,
                           consecutive_differences, create_boring_video, frame_differences, pool_field)


@pytest.fixture(scope="module")
def offline_video(tmp_path_factory):
    """MViTv2 built offline with an empty torch hub cache: falls back to random init."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
        return create_boring_video(seed=0)


@pytest.fixture(scope="module")
def encoded(offline_video, sample_path):
    """One forward pass; the raw output of the last block and the logits are captured beside it."""
    raw = {}
    handles = [offline_video.model.blocks[-1].register_forward_hook(lambda m, i, o: raw.__setitem__("last", o[0])),
               offline_video.model.register_forward_hook(lambda m, i, o: raw.__setitem__("logits", o))]
    try:
        out = offline_video.encode(load_image(sample_path))
    finally:
        for h in handles:
            h.remove()
    return out, raw


def test_offline_without_cache_is_random_init_and_says_so(offline_video):
    w = offline_video.weights
    assert w.kind == "random" and not w.pretrained
    assert "unreachable" in w.detail
    assert w.warning.startswith("Random-init MViTv2")


def test_clip_is_the_image_repeated_and_normalised():
    image = np.random.default_rng(0).random((SIDE, SIDE, 3), dtype=np.float32)
    clip = boring_clip(image)
    assert clip.shape == (1, 3, FRAMES_IN, SIDE, SIDE)
    assert torch.equal(clip[0, :, 0], clip[0, :, FRAMES_IN - 1])
    expected = (image[..., 0] - 0.45) / 0.225
    np.testing.assert_allclose(clip[0, 0, 5].numpy(), expected, atol=1e-5)


def test_every_block_has_its_grid(encoded):
    out, _ = encoded
    assert out.image.shape == (SIDE, SIDE, 3)
    assert len(out.blocks) == 16
    for tokens, (h, w, d) in zip(out.blocks, BLOCK_GRIDS):
        assert tokens.shape == (FRAMES, h, w, d)
        assert tokens.dtype == np.float32 and np.isfinite(tokens).all()
    assert out.field(0, 0).shape == (56, 56, 96)
    assert out.field(3, 7).shape == (14, 14, 384)
    assert out.seconds > 0


def test_class_token_is_dropped(encoded, offline_video):
    out, raw = encoded
    last = raw["last"][0]  # (1 + 8*7*7, 768): the class token, then the grid
    assert last.shape[0] == 1 + FRAMES * 7 * 7
    np.testing.assert_array_equal(out.blocks[-1].reshape(-1, 768), last[1:].numpy())
    # Index 0 is the class token: the classifier reads it, and only it.
    model = offline_video.model
    with torch.inference_mode():
        logits = model.head(model.norm(raw["last"])[:, 0])
    torch.testing.assert_close(logits, raw["logits"])


def test_boring_video_settles_in_the_middle_frames(encoded):
    out, _ = encoded
    for block in (0, 1, 2):
        mid = frame_differences(out.blocks[block], reference=4)
        assert mid[4] == 0
        # Every input frame is the same; only zero padding in time sets the first frame apart.
        assert mid[3] < 0.1 and mid[5] < 0.1, (block, mid)
        assert mid[0] > mid[3], (block, mid)
    steps = out.consecutive_differences(0)
    assert steps[0] == 0 and steps.shape == (FRAMES,)
    assert steps[4] < 0.05 and steps[1] > steps[4]
    np.testing.assert_allclose(out.frame_differences(1), frame_differences(out.blocks[1], 0))


def test_difference_helpers_on_known_arrays():
    x = np.ones((3, 2, 2, 4), np.float32)
    x[2] *= 2
    np.testing.assert_allclose(frame_differences(x), [0, 0, 1])
    np.testing.assert_allclose(consecutive_differences(x), [0, 0, 1])
    f = np.arange(56 * 56 * 2, dtype=np.float32).reshape(56, 56, 2)
    pooled = pool_field(f, 28)
    assert pooled.shape == (28, 28, 2)
    np.testing.assert_allclose(pooled[0, 0], f[:2, :2].reshape(-1, 2).mean(0))
    assert pool_field(f[:28, :28], 28).shape == (28, 28, 2)


def test_bad_block_or_frame_is_a_clear_error(encoded):
    out, _ = encoded
    with pytest.raises(ApmVizError, match="block 16"):
        out.field(16, 0)
    with pytest.raises(ApmVizError, match="frame 8"):
        out.field(0, 8)


def test_kinetics_style_weights_from_a_local_file_and_the_cache(tmp_path, offline_video, monkeypatch):
    # A torchvision-style state dict (the Kinetics file is one): saved here from the random model.
    sd = offline_video.model.state_dict()
    path = tmp_path / "mvit_v2_s-local.pth"
    torch.save(sd, path)
    loaded = create_boring_video(weights=path, seed=1)
    assert loaded.weights.kind == "local" and loaded.weights.pretrained and loaded.weights.warning is None
    mine = loaded.model.state_dict()
    assert all(torch.equal(mine[k], v) for k, v in sd.items())
    # The same file where torchvision keeps it: found without network.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cached = cached_weights_path()
    cached.parent.mkdir(parents=True)
    cached.write_bytes(path.read_bytes())
    from_cache = create_boring_video(seed=2)
    assert from_cache.weights.kind == "cache" and "torch hub cache" in from_cache.weights.label
    assert torch.equal(from_cache.model.state_dict()["conv_proj.weight"], sd["conv_proj.weight"])


def test_wrong_weights_file_is_a_one_line_error(tmp_path, small_teacher):
    path = tmp_path / "dinov2.pth"
    torch.save(small_teacher.model.state_dict(), path)
    with pytest.raises(ApmVizError) as err:
        create_boring_video(weights=path)
    msg = str(err.value)
    assert "\n" not in msg and "not weights for torchvision mvit_v2_s" in msg
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ApmVizError, match="not a readable weights file"):
        create_boring_video(weights=junk)
