"""The boring video: torchvision's MViTv2-S, random init, one forward for the whole module."""

import threading

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
    """One encode; beside it, torchvision's own forward of the same clip, with
    the last block's output and the logits captured by hooks of this test's own."""
    out = offline_video.encode(load_image(sample_path))
    raw = {}
    model = offline_video.model
    handles = [model.blocks[-1].register_forward_hook(lambda m, i, o: raw.__setitem__("last", o[0])),
               model.register_forward_hook(lambda m, i, o: raw.__setitem__("logits", o))]
    try:
        with torch.inference_mode():
            model(boring_clip(out.image, offline_video.mean, offline_video.std))
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
    # The walk over the blocks gives what torchvision's own forward computes.
    np.testing.assert_allclose(out.blocks[-1].reshape(-1, 768), last[1:].numpy(), rtol=1e-5, atol=1e-5)
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


def test_two_sessions_encoding_at_once_each_get_their_own_tokens(offline_video, encoded, sample_path):
    """The app shares one model between sessions: two encodes that overlap must
    each give what that image gives alone."""
    chelsea, _ = encoded
    coffee = load_image(sample_path.with_name("coffee.jpg"))
    coffee_alone = offline_video.encode(coffee)
    assert not np.allclose(chelsea.blocks[1], coffee_alone.blocks[1], atol=1e-2)  # a mix-up would show
    # Both passes wait for each other before block 1, so they surely overlap (a test-only pre-hook).
    meet = threading.Barrier(2, timeout=120)
    waited = set()

    def both_here(module, args):
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            meet.wait()

    results, errors = {}, []

    def encode(name, image):
        try:
            results[name] = offline_video.encode(image)
        except BaseException as err:  # reported below, with the other thread's result
            errors.append(err)

    handle = offline_video.model.blocks[1].register_forward_pre_hook(both_here)
    try:
        threads = [threading.Thread(target=encode, args=("chelsea", load_image(sample_path))),
                   threading.Thread(target=encode, args=("coffee", coffee))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        handle.remove()
    assert not errors, errors
    assert len(waited) == 2
    # Two threads share torch's intra-op pool, which may split reductions differently: float tolerance.
    for name, alone in (("chelsea", chelsea), ("coffee", coffee_alone)):
        for block, (mine, solo) in enumerate(zip(results[name].blocks, alone.blocks)):
            np.testing.assert_allclose(mine, solo, rtol=1e-4, atol=1e-4, err_msg=f"{name}, block {block}")
