import math

import numpy as np
import pytest

from apm_viz.ttt import GRID_DEFAULTS, Trainer, TTTConfig, default_snapshots, recommended, run_ttt


def test_token_mode_loss_falls_1000_fold_in_250_laptop_iterations(teacher_out32):
    run = run_ttt(teacher_out32, TTTConfig(loss="token", iters=250, preset="laptop"))
    assert run.status == "done"
    assert len(run.losses) == 251
    assert run.loss_drop() >= 1000, run.losses[-1]


def test_same_seed_same_run_other_seed_other_run(teacher_out16):
    cfg = TTTConfig(loss="grid+rgb", iters=12, snapshots=(0, 6))
    a, b = run_ttt(teacher_out16, cfg), run_ttt(teacher_out16, cfg)
    c = run_ttt(teacher_out16, TTTConfig(loss="grid+rgb", iters=12, snapshots=(0, 6), seed=1))
    assert a.losses == b.losses
    for sa, sb in zip(a.snapshots, b.snapshots):
        np.testing.assert_array_equal(sa.field, sb.field)
    assert a.losses != c.losses


def test_snapshots_at_chosen_iterations(teacher_out16):
    run = run_ttt(teacher_out16, TTTConfig(iters=20, snapshots=(0, 3, 10)))
    assert run.iterations == [0, 3, 10, 20]
    snap = run.snapshot(10)
    assert snap.field.shape == (16, 16, teacher_out16.grid.shape[-1])
    assert snap.rgb.shape == (16, 16, 3)
    assert snap.loss == pytest.approx(dict(run.losses)[10])
    assert run.snapshot(15).iteration == 10  # the last one taken before


def test_default_snapshots():
    snaps = default_snapshots(250)
    assert snaps[0] == 0 and snaps[-1] == 250
    assert {50, 100, 150, 200} <= set(snaps)
    assert 18 in snaps and len([s for s in snaps if s < 50]) >= 6


def test_gradients_are_zeroed_every_step(teacher_out16):
    import copy

    tr = Trainer(teacher_out16, TTTConfig(loss="grid", iters=5, snapshots=()))
    tr.step(1)  # now at iteration 1; .grad holds the gradient of iteration 0
    ref = copy.deepcopy(tr.model)
    ref.zero_grad(set_to_none=True)
    feats, rgb, pooled = ref(tr.image)
    sum(tr._losses(feats, rgb, pooled).values()).backward()
    tr.step(1)  # .grad now holds iteration 1's gradient alone, if zeroed
    compared = 0
    for p, q in zip(tr.model.parameters(), ref.parameters()):
        if q.grad is None:  # e.g. the RGB head when rgb is not supervised
            continue
        assert np.allclose(p.grad.numpy(), q.grad.numpy(), atol=1e-6)
        compared += 1
    assert compared >= 5


def test_cancel_keeps_snapshots(teacher_out16):
    tr = Trainer(teacher_out16, TTTConfig(iters=100, snapshots=(0, 2, 5, 50)))
    tr.step(10)
    tr.cancel()
    tr.step(10)
    run = tr.run
    assert run.status == "cancelled" and run.iterations == [0, 2, 5]
    assert len(run.losses) == 10


def test_should_stop_cancels_run_ttt(teacher_out16):
    calls = []
    run = run_ttt(teacher_out16, TTTConfig(iters=100), should_stop=lambda: len(calls) >= 2,
                  progress=lambda r: calls.append(r.losses[-1][0]))
    assert run.status == "cancelled" and 0 < len(run.losses) < 100


def test_divergence_stops_with_message_and_keeps_snapshots(teacher_out16):
    run = run_ttt(teacher_out16, TTTConfig(loss="grid", lr=50.0, iters=200, snapshots=(0, 1, 2, 3)))
    assert run.status == "diverged"
    assert "diverged" in run.message and "learning rate" in run.message
    assert run.iterations and run.iterations[0] == 0
    assert all(np.isfinite(s.field).all() for s in run.snapshots)


def test_unknown_loss_is_a_clear_error(teacher_out16):
    from apm_viz.errors import ApmVizError

    with pytest.raises(ApmVizError, match="unknown loss"):
        TTTConfig(loss="tokens").terms()


def test_recommended_grid_settings_fit_better_than_paper_settings(teacher_out16):
    paper = run_ttt(teacher_out16, TTTConfig(loss="grid", iters=60, snapshots=()))
    tuned = run_ttt(teacher_out16, recommended("grid", iters=60, snapshots=()))
    assert tuned.losses[-1][1] < paper.losses[-1][1]
    assert tuned.config.pos_scale == GRID_DEFAULTS["pos_scale"]


def test_config_round_trip():
    cfg = TTTConfig(loss="grid+rgb", loss_weights=(("rgb", 0.5),), snapshots=(0, 5), pos_scale=2.0)
    assert TTTConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.terms() == {"grid": 1.0, "rgb": 0.5}


def test_grid_defaults_code_is_below_nyquist_so_every_channel_trains():
    """At exactly pi rad per grid step a sin channel is sin(pi k) = 0 at every grid
    point: it never trains, yet reaches +-0.71 at the 2x query points."""
    from apm_viz.model import grid_coords, positional_code

    apm = recommended("grid").apm_config()
    assert apm.pos_scale < math.pi  # the highest frequency, pos_scale rad per step, under the grid's Nyquist rate
    code = positional_code(grid_coords(16, 16), apm.pos_dim, apm.pos_base, apm.pos_scale).numpy()
    assert np.abs(code).max(axis=0).min() > 1e-3  # no channel is (numerically) zero over the whole grid
    at_nyquist = positional_code(grid_coords(16, 16), apm.pos_dim, apm.pos_base, math.pi).numpy()
    assert np.abs(at_nyquist).max(axis=0).min() < 1e-5  # what the check above catches
