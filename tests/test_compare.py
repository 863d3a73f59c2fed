import numpy as np
import pytest
import torch

from apm_viz.compare import (Comparison, JointProjection, converging_config, error_curve, error_map, error_stats,
                             paper_config, patches_at, query, relative_error, summary)
from apm_viz.errors import ApmVizError
from apm_viz.model import APM, get_preset, grid_coords
from apm_viz.ttt import GRID_DEFAULTS, Trainer, run_ttt


@pytest.fixture(scope="module")
def fitted(teacher_out16):
    """A short converging grid run on the 16x16 sample, its trainer kept live."""
    tr = Trainer(teacher_out16, converging_config("grid", iters=60, snapshots=(0, 20, 40)))
    while not tr.run.finished:
        tr.step(20)
    return tr


def test_l1_error_map_is_the_channel_sum_and_cosine_is_one_minus_cos():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(3, 4, 8)).astype(np.float32)
    a = t.copy()
    a[1, 2] += 0.5  # one location off by 0.5 in each of 8 channels
    l1 = error_map(a, t, "l1")
    assert l1.shape == (3, 4)
    assert l1[1, 2] == pytest.approx(4.0, rel=1e-5)
    assert np.count_nonzero(l1) == 1
    cos = error_map(-t, t, "cosine")
    assert np.allclose(cos, 2.0, atol=1e-5)
    assert np.allclose(error_map(3 * t, t, "cosine"), 0.0, atol=1e-5)
    assert np.allclose(relative_error(np.zeros_like(t), t), 1.0)
    with pytest.raises(ApmVizError):
        error_map(a, t, "l2")
    with pytest.raises(ApmVizError):
        error_map(a[:, :2], t)


def test_stats():
    t = np.ones((2, 2, 4), np.float32)
    a = t.copy()
    a[0, 0] = 0.0  # relative error 1 there, 0 elsewhere
    s = error_stats(a, t, "l1", threshold=0.5)
    assert s.mean == pytest.approx(1.0) and s.max == pytest.approx(4.0)
    assert s.relative == pytest.approx(0.25) and s.share_under == pytest.approx(0.75)


def test_joint_projection_gives_equal_features_equal_colours():
    rng = np.random.default_rng(1)
    teacher = rng.normal(size=(6, 6, 16))
    apm = rng.normal(size=(6, 6, 16))
    apm[2:4, 2:4] = teacher[2:4, 2:4]  # where the APM matches the teacher
    proj = JointProjection(teacher, apm)
    tc, ac = proj.colors(teacher), proj.colors(apm)
    assert tc.shape == ac.shape == (6, 6, 3)
    assert 0 <= tc.min() and max(tc.max(), ac.max()) <= 1
    np.testing.assert_allclose(tc[2:4, 2:4], ac[2:4, 2:4], atol=1e-6)
    assert np.abs(tc - ac).sum(-1).max() > 0.1  # elsewhere they differ
    # Separately fitted projections would not agree: centring each on its own mean shifts colours.
    shifted = teacher + 5.0
    joint = JointProjection(teacher, shifted)
    assert np.abs(joint.colors(teacher) - joint.colors(shifted)).max() > 0.1


def test_patches_at_integer_coordinates_are_the_models_patches():
    model = APM(get_preset("laptop", local_patch=True), (4, 5), feature_dim=8)
    image = torch.randn(1, 3, 4 * 14, 5 * 14)
    got = patches_at(image, grid_coords(4, 5), 14)
    np.testing.assert_allclose(got.numpy(), model.patches(image).numpy(), atol=1e-4)
    half = patches_at(image, grid_coords(4, 5, 2.0), 14)
    assert half.shape == (1, 80, 3 * 14 * 14)


def test_query_at_scale_one_is_the_trained_grid_and_finer_scales_cover_it(fitted, teacher_out16):
    model, image = fitted.model, fitted.image
    one = query(model, image, 1.0)
    with torch.no_grad():
        feats, rgb, _ = model(image)
    np.testing.assert_allclose(one.field.reshape(-1, one.field.shape[-1]), feats[0].numpy(), atol=1e-4)
    for s in (2, 4):
        q = query(model, image, s, iteration=fitted.iteration)
        assert q.field.shape == (16 * s, 16 * s, teacher_out16.grid.shape[-1])
        assert q.rgb.shape == (16 * s, 16 * s, 3)
        # Pooled back to the teacher's grid, the finer field stays near the fitted one.
        pooled = q.field.reshape(16, s, 16, s, -1).mean((1, 3))
        near = relative_error(pooled, one.field).mean()
        far = relative_error(np.zeros_like(pooled), one.field).mean()
        assert near < 0.5 * far
    with pytest.raises(ApmVizError):
        query(model, image, 0)


def test_comparison_caches_frames_and_the_error_falls(fitted, teacher_out16):
    comp = Comparison(teacher_out16, fitted.run)
    f = comp.frame(40)
    assert comp.frame(45) is f  # the last snapshot taken at or before 45
    assert f.teacher_colors.shape == f.apm_colors.shape == (16, 16, 3)
    assert comp.error(40, "cosine") is comp.error(40, "cosine")
    curve = comp.curve()
    assert [i for i, _ in curve] == [0, 20, 40, 60]
    assert curve[0][1] > 0.9  # a fresh field is about as far as zeros
    assert curve[-1][1] < 0.5 * curve[0][1]
    s = summary(comp)
    assert s["first"] == curve[0][1] and s["last"] == curve[-1][1] and s["seconds"] > 0
    cos = error_curve(fitted.run, teacher_out16, "cosine")
    assert cos[-1][1] < cos[0][1]
    q = comp.query(fitted.model, fitted.image, 2, fitted.iteration)
    assert comp.query(fitted.model, fitted.image, 2, fitted.iteration) is q


def test_settings_paper_one_call_away_and_grid_required():
    conv, paper = converging_config("grid+rgb"), paper_config("grid+rgb")
    assert conv.local_patch and conv.lr == GRID_DEFAULTS["lr"] and conv.terms() == {"grid": 1.0, "rgb": 1.0}
    assert paper.lr == 1e-4 and not paper.local_patch and paper.pos_scale is None and paper.iters == 250
    with pytest.raises(ApmVizError):
        converging_config("token")
    with pytest.raises(ApmVizError):
        paper_config("rgb")


def test_converging_settings_beat_the_papers_at_equal_steps(teacher_out16):
    conv = run_ttt(teacher_out16, converging_config("grid", iters=40, snapshots=(0,)))
    paper = run_ttt(teacher_out16, paper_config("grid", iters=40, snapshots=(0,)))
    last = lambda run: relative_error(run.snapshots[-1].field, teacher_out16.grid).mean()
    assert last(conv) < 0.8 * last(paper)
