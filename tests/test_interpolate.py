"""Latent interpolation: a memory of several images, codes, decoding, the walk."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from apm_viz import interpolate as itp
from apm_viz.errors import ApmVizError
from apm_viz.figures.interpolation import strip, walk_gif
from apm_viz.figures.maps import upscale

#: A short fit: enough for the end frames to match their images (measured with
#: the 2-block random teacher on chelsea + coffee at 16x16: after 100 updates
#: the RGB error of an end frame against its own image is 75 to 190 times
#: smaller than against the other image).
ITERS = 100


@pytest.fixture(scope="module")
def pair(small_teacher, teacher_out16):
    from apm_viz.images import load_image
    from apm_viz.pipeline import encode
    from conftest import ASSETS

    return [teacher_out16, encode(load_image(ASSETS / "coffee.jpg"), small_teacher, 16)]


@pytest.fixture(scope="module")
def memory(pair):
    return itp.fit_memory(pair, itp.memory_config(iters=ITERS), names=["chelsea", "coffee"])


# -- codes --------------------------------------------------------------------

def test_codes_include_both_ends_and_step_evenly():
    v1, v2 = np.arange(6, dtype=np.float32), np.arange(6, dtype=np.float32)[::-1] * 2
    steps, codes = itp.interpolate_codes(v1, v2, 4)
    assert steps.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(codes[0], v1)
    np.testing.assert_allclose(codes[-1], v2)
    np.testing.assert_allclose(codes[2], (v1 + v2) / 2, rtol=1e-6)
    np.testing.assert_allclose(np.diff(codes, axis=0), np.tile((v2 - v1) / 4, (4, 1)), rtol=1e-5, atol=1e-6)


def test_codes_without_ends_and_with_extrapolation():
    v1, v2 = np.zeros(3), np.ones(3)
    steps, codes = itp.interpolate_codes(v1, v2, 4, start=False, end=False)
    assert steps.tolist() == [1, 2, 3]
    steps, codes = itp.interpolate_codes(v1, v2, 4, extrapolate=2)
    assert steps.tolist() == [-2, -1, 0, 1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(codes[0], -0.5)  # i = -2: v1 - 2 (v2 - v1) / 4
    np.testing.assert_allclose(codes[-1], 1.5)  # i = 6
    with pytest.raises(ApmVizError):
        itp.interpolate_codes(v1, v2, 0)
    with pytest.raises(ApmVizError):
        itp.interpolate_codes(v1, v2, 1, start=False, end=False)


def test_dream_codes_follow_the_fitted_columns_statistics():
    rng = np.random.default_rng(1)
    columns = rng.normal(size=(3, 50)) * np.linspace(0.1, 2, 50) + np.linspace(-3, 3, 50)
    a, b = itp.dream_codes(columns, 4000, seed=5), itp.dream_codes(columns, 4000, seed=5)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (4000, 50)
    np.testing.assert_allclose(a.mean(0), columns.mean(0), atol=0.15)
    np.testing.assert_allclose(a.std(0), columns.std(0), rtol=0.1)
    np.testing.assert_allclose(itp.dream_codes(columns, 2, temperature=0.0), np.tile(columns.mean(0), (2, 1)),
                               rtol=1e-5, atol=1e-6)


# -- smoothness ------------------------------------------------------------------

def test_smoothness_of_constructed_walks():
    a, b = np.zeros((2, 2, 3)), np.ones((2, 2, 3))
    even = np.stack([a + (b - a) * k / 5 for k in range(6)])
    assert itp.smoothness(even) == pytest.approx(1 / 5)
    # Scalar frames 0, 1, 3, 4: steps 1, 2, 1 over a distance of 4.
    assert itp.smoothness(np.array([[0.0], [1.0], [3.0], [4.0]])) == pytest.approx(0.5)
    # A collapse: stays at one end, then jumps to the other.
    assert itp.smoothness(np.stack([a, a, a, b, b])) == pytest.approx(1.0)
    # Extrapolated frames step too; the ends are given explicitly (i = 0 and i = 2).
    frames = np.array([[-1.0], [0.0], [1.0], [2.0], [3.5]])
    assert itp.smoothness(frames, frames[1], frames[3]) == pytest.approx(1.5 / 2)
    with pytest.raises(ApmVizError):
        itp.smoothness(np.stack([a, b, a]))  # both ends the same frame


# -- the memory -------------------------------------------------------------------

def test_memory_needs_two_images_of_one_grid(pair, small_teacher):
    with pytest.raises(ApmVizError):
        itp.MemoryTrainer(pair[:1])
    from apm_viz.images import load_image
    from apm_viz.pipeline import encode
    from conftest import SAMPLE

    other = encode(load_image(SAMPLE), small_teacher, 8)
    with pytest.raises(ApmVizError):
        itp.MemoryTrainer([pair[0], other])


def saved_activation_bytes(model, images: torch.Tensor) -> int:
    """Bytes of the tensors autograd keeps for backward in one forward of
    `images` (B, 3, S, S), the parameters themselves left out: torch's own count."""
    kept = {}

    def pack(t):
        kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(images)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(n for ptr, n in kept.items() if ptr not in params)


def test_memory_estimate_counts_every_image(pair, small_teacher):
    from apm_viz.images import load_image
    from apm_viz.pipeline import encode
    from apm_viz.ttt import estimate_memory
    from conftest import ASSETS

    trio = pair + [encode(load_image(ASSETS / "rocket.jpg"), small_teacher, 16)]
    cfg = itp.memory_config(iters=10)
    trainer = itp.MemoryTrainer(trio, cfg)
    model, batch = trainer.model, trainer.image  # batch: (3, 3, S, S), as the fit sees it
    one, three = (estimate_memory(cfg, 16, 384, images=b) for b in (1, 3))
    kept1 = saved_activation_bytes(model, batch[:1].clone())
    kept3 = saved_activation_bytes(model, batch)
    assert kept3 > 2.5 * kept1  # what backward keeps grows with the images (measured 2.8x)
    assert one.activations >= kept1 and three.activations >= kept3
    assert three.activations - one.activations >= kept3 - kept1  # the other images are counted too


def test_a_memory_fit_over_the_limit_is_refused(pair, small_teacher, teacher_out16, monkeypatch):
    from apm_viz.images import load_image
    from apm_viz.pipeline import encode
    from apm_viz.ttt import MEMORY_LIMIT_ENV, Trainer, estimate_memory
    from conftest import ASSETS

    trio = pair + [encode(load_image(ASSETS / "rocket.jpg"), small_teacher, 16)]
    cfg = itp.memory_config(iters=10)
    # A limit that one image fits under and three do not.
    one, three = (estimate_memory(cfg, 16, 384, images=b).total for b in (1, 3))
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str((one + three) // 2))
    assert Trainer(teacher_out16, cfg).run.status == "running"
    with pytest.raises(ApmVizError) as err:
        itp.MemoryTrainer(trio, cfg)
    msg = str(err.value)
    assert "\n" not in msg and "3 images" in msg and f"set by {MEMORY_LIMIT_ENV}" in msg
    # The same fit under the limit argument.
    from apm_viz.ttt import check_memory

    with pytest.raises(ApmVizError, match="3 images"):
        check_memory(cfg, 16, 384, limit_bytes=(one + three) // 2, images=3)
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(three))
    assert itp.MemoryTrainer(trio, cfg).run.status == "running"


def test_fit_runs_to_the_end_and_the_loss_falls(memory):
    run = memory.run
    assert run.status == "done"
    assert [i for i, _ in run.losses] == list(range(ITERS + 1))
    assert set(run.terms) == {"grid", "rgb"}
    assert run.loss_drop() > 3  # measured 4.8 after 100 updates
    assert memory.columns.shape == (2, 256)
    assert memory.names == ["chelsea", "coffee"]


def test_end_points_reproduce_the_fitted_images(memory, pair):
    # Decoding a fitted trigger column is exactly the training forward pass on that image.
    trainer_feats, trainer_rgb, _ = memory.model(pair[1].input_tensor())
    fields, rgb = itp.decode(memory.model, memory.columns[1:2])
    np.testing.assert_allclose(fields[0].reshape(256, -1), trainer_feats[0].detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(rgb[0].reshape(256, 3), trainer_rgb[0].detach().numpy(), atol=1e-6)
    for k in range(2):
        err = itp.end_errors(memory, k)
        # The field keeps most of the teacher's variance (1.0 would be no better than its mean) ...
        assert err["field_rel"] < 0.5, err
        assert err["field_rel"] < err["field_rel_other"] / 2, err
        # ... and the end frame is at least 20x closer to its own image than to the other.
        assert err["rgb_mse"] < err["rgb_mse_other"] / 20, err


def test_decoding_shapes_and_batch_independence(memory):
    codes = itp.dream_codes(memory.columns, 3, seed=2)
    fields, rgb = itp.decode(memory.model, codes, batch=2)
    assert fields.shape == (3, 16, 16, 384) and rgb.shape == (3, 16, 16, 3)
    assert rgb.min() >= 0 and rgb.max() <= 1
    alone, _ = itp.decode(memory.model, codes[1:2])
    np.testing.assert_allclose(alone[0], fields[1], atol=1e-5)
    hi = itp.decode_rgb(memory.model, codes, scale=2)
    assert hi.shape == (3, 32, 32, 3)
    same = itp.decode_rgb(memory.model, codes, scale=1)
    np.testing.assert_allclose(same, rgb, atol=1e-5)
    with pytest.raises(ApmVizError):
        itp.decode(memory.model, codes[:, :10])


def test_walk_between_two_images_changes_smoothly(memory):
    w = itp.walk(memory, "chelsea", "coffee", n=6, extrapolate=1)
    assert w.steps.tolist() == list(range(-1, 8))
    assert w.fields.shape == (9, 16, 16, 384) and w.rgb.shape == (9, 16, 16, 3)
    assert w.labels()[0].endswith("(extrapolated)") and w.labels()[1].endswith("(A)")
    np.testing.assert_allclose(w.rgb[1], w.end_rgb[0], atol=1e-6)
    np.testing.assert_allclose(w.rgb[7], w.end_rgb[1], atol=1e-6)
    # Even steps give 1/6; a collapse onto one image and a jump gives about 1.
    assert w.smoothness("rgb") < 2.5 / 6
    assert w.smoothness("field") < 2.5 / 6
    inner = itp.walk(memory, 0, 1, n=6, start=False, end=False)
    assert inner.steps.tolist() == [1, 2, 3, 4, 5]
    assert inner.smoothness() > 0
    with pytest.raises(ApmVizError):
        itp.walk(memory, 0, 0)
    with pytest.raises(ApmVizError):
        itp.walk(memory, 0, 5)


def test_islands_of_the_walk_share_one_colour_space(memory):
    w = itp.walk(memory, 0, 1, n=4)
    proj = itp.walk_islands(w.fields)
    assert len(proj) == 5 and proj.colors[0].shape == (16, 16, 3)
    joint = np.stack(proj.colors)
    # One min-max over every frame: the extremes are reached somewhere in the walk, not in each frame.
    assert joint.min() == pytest.approx(0, abs=1e-6) and joint.max() == pytest.approx(1, abs=1e-6)
    assert len(itp.walk_island_counts(w.fields)) == 5
    with pytest.raises(ApmVizError):
        itp.walk_islands(w.fields, method="umap")


def test_gif_and_strip_pictures(memory):
    w = itp.walk(memory, 0, 1, n=3)
    gif = Image.open(io.BytesIO(walk_gif(w.rgb, size=64)))
    assert gif.size == (64, 64) and gif.n_frames == 6  # 4 forwards, 2 back
    picture = strip(w.rgb, size=32, gap=2)
    assert picture.shape == (32, 4 * 32 + 3 * 2, 3) and picture.dtype == np.uint8
    assert (picture[:, 32:34] == 255).all()  # the white gap between the first two frames
    np.testing.assert_array_equal(picture[:, :32], upscale(w.rgb[0], 32))


def test_cancel_keeps_what_was_learned(pair):
    cfg = itp.memory_config(iters=50)
    t = itp.MemoryTrainer(pair, cfg)
    t.step(4)
    t.cancel()
    run = t.step(10)
    assert run.status == "cancelled" and t.iteration == 4 and len(run.losses) == 4
    ref = itp.MemoryTrainer(pair, cfg)
    ref.step(4)
    for p, q in zip(t.model.parameters(), ref.model.parameters()):
        torch.testing.assert_close(p, q)
    m = t.memory()
    assert m.columns.shape == (2, 256)
    calls = []
    stopped = itp.fit_memory(pair, cfg, should_stop=lambda: len(calls) >= 2, progress=calls.append, chunk=3)
    assert stopped.run.status == "cancelled" and len(stopped.run.losses) == 6


def test_gradients_are_zeroed_every_step(pair):
    import copy

    t = itp.MemoryTrainer(pair, itp.memory_config(iters=5))
    t.step(1)
    ref = copy.deepcopy(t.model)
    ref.zero_grad(set_to_none=True)
    feats, rgb, pooled = ref(t.image)
    sum(t.terms[k] * v for k, v in t._losses(feats, rgb, pooled).items()).backward()
    t.step(1)
    for p, q in zip(t.model.parameters(), ref.parameters()):
        if q.grad is not None:
            np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), atol=1e-6)


def test_divergence_stops_with_a_message(pair):
    t = itp.MemoryTrainer(pair, itp.memory_config(iters=30, lr=1e4))
    while not t.run.finished:
        t.step(10)
    assert t.run.status == "diverged" and "learning rate" in t.run.message
    with pytest.raises(ApmVizError):
        t.memory()


def test_a_memory_of_three_images_walks_between_any_two(pair, small_teacher):
    from apm_viz.images import load_image
    from apm_viz.pipeline import encode
    from conftest import ASSETS

    third = encode(load_image(ASSETS / "rocket.jpg"), small_teacher, 16)
    m = itp.fit_memory(pair + [third], itp.memory_config(iters=10), names=["chelsea", "coffee", "rocket"])
    assert m.columns.shape == (3, 256) and m.target_rgb.shape == (3, 16, 16, 3)
    w = itp.walk(m, "rocket", "chelsea", n=3)
    assert (w.a, w.b) == (2, 0)
    np.testing.assert_allclose(w.codes[0], m.columns[2], rtol=1e-6)
    np.testing.assert_allclose(w.codes[-1], m.columns[0], rtol=1e-6)
