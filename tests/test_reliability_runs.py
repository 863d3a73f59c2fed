"""Runs that go wrong: divergence, cancel, and runs too large for memory.

The app's side of the same cases is in test_reliability_app.py.
"""

import math

import numpy as np
import pytest
import torch

from apm_viz import cli
from apm_viz.errors import ApmVizError
from apm_viz.film import IslandsFilm
from apm_viz.ttt import (MEMORY_FRACTION, MEMORY_LIMIT_ENV, TTTConfig, Trainer, available_memory, check_memory,
                         estimate_memory, memory_limit, run_ttt)
from conftest import laptop_parameters


def diverge_after(trainer: Trainer, iterations: int, lr: float = 1e3) -> None:
    """Train normally for a while, then jump the learning rate: a late divergence."""
    trainer.step(iterations)
    for group in trainer.optimizer.param_groups:
        group["lr"] = lr


# -- divergence --------------------------------------------------------------------

@pytest.mark.parametrize("lr", [0.1, float("inf")])
def test_divergence_stops_with_a_message(teacher_out16, lr):
    run = run_ttt(teacher_out16, TTTConfig(loss="grid", lr=lr, iters=30))
    assert run.status == "diverged" and run.finished
    assert "diverged at iteration 1" in run.message and "\n" not in run.message
    assert ("nan" in run.message) == math.isinf(lr)  # inf lr -> NaN weights; 0.1 -> a huge finite loss
    assert run.iterations == [0] and run.snapshots[0].loss == run.losses[0][1]
    assert np.isfinite(run.snapshots[0].field).all()


def test_late_divergence_keeps_every_snapshot_before_it(teacher_out16):
    trainer = Trainer(teacher_out16, TTTConfig(loss="grid", lr=1e-3, iters=30))
    diverge_after(trainer, 6)
    kept = [(s.iteration, s.field.copy()) for s in trainer.run.snapshots]
    assert [i for i, _ in kept] == [0, 1, 2, 3, 5]
    trainer.step(100)
    run = trainer.run
    assert run.status == "diverged" and "lower the learning rate" in run.message
    assert "The 5 snapshots before it are kept" in run.message
    assert run.iterations == [0, 1, 2, 3, 5]
    for (i, field), snap in zip(kept, run.snapshots):
        assert snap.iteration == i and np.array_equal(snap.field, field)
    before = len(run.losses)
    trainer.step(10)  # a finished run does not move
    assert len(run.losses) == before


def test_nan_in_the_teacher_is_divergence_at_once(teacher_out16):
    from dataclasses import replace

    bad = replace(teacher_out16, token=np.full_like(teacher_out16.token, np.nan))
    run = run_ttt(bad, TTTConfig(loss="token", iters=10))
    assert run.status == "diverged" and "iteration 0 (nan)" in run.message and run.snapshots == []


def test_film_of_a_diverged_run_finishes_and_shows_its_frames(teacher_out16):
    film = IslandsFilm(teacher_out16, TTTConfig(loss="grid", lr=1e-3, iters=30), live={})
    diverge_after(film.trainer, 6)
    for _ in range(50):
        if film.done:
            break
        film.advance(budget=0.5)
    assert film.done and film.run.status == "diverged" and film.frames == 5
    assert len(film.island_counts()) == 5


# -- cancel ------------------------------------------------------------------------

@pytest.mark.parametrize("at", [0, 1, 4, 13])
def test_cancel_at_any_point_keeps_snapshots(teacher_out16, at):
    trainer = Trainer(teacher_out16, TTTConfig(loss="grid", iters=20))
    trainer.step(at)
    kept = [(s.iteration, s.field.copy()) for s in trainer.run.snapshots]
    losses = list(trainer.run.losses)
    trainer.cancel()
    trainer.step(50)
    run = trainer.run
    assert run.status == "cancelled" and run.message == "cancelled by the user"
    assert len(run.snapshots) == len(kept) == len([i for i in (0, 1, 2, 3, 5, 8, 12) if i < at])
    for (i, field), snap in zip(kept, run.snapshots):
        assert snap.iteration == i and np.array_equal(snap.field, field)
    assert run.losses == losses


def test_cancel_after_the_end_changes_nothing(teacher_out16):
    trainer = Trainer(teacher_out16, TTTConfig(loss="grid", iters=5))
    trainer.step(100)
    trainer.cancel()
    trainer.step(1)
    assert trainer.run.status == "done" and trainer.run.iterations[-1] == 5


def test_should_stop_cancels_run_ttt(teacher_out16):
    calls = []
    run = run_ttt(teacher_out16, TTTConfig(loss="grid", iters=200), chunk=3,
                  progress=lambda r: calls.append(len(r.losses)), should_stop=lambda: len(calls) >= 2)
    assert run.status == "cancelled" and run.snapshots and run.iterations[-1] < 200


def test_film_cancel_keeps_projected_frames(teacher_out16):
    film = IslandsFilm(teacher_out16, TTTConfig(loss="grid", iters=40), live={})
    film.advance(budget=60, max_iters=10)
    frames_before = len(film.run.snapshots)
    film.cancel()
    for _ in range(20):
        film.advance(budget=0.5)
    assert film.run.status == "cancelled" and film.done
    assert len(film.run.snapshots) == frames_before and film.frames == frames_before > 0


# -- memory ------------------------------------------------------------------------

def test_estimate_counts_the_parameters_and_what_adam_holds(teacher_out16):
    laptop = dict(preset="laptop", local_patch=False, pooling="mean")
    for grid, dim in ((16, 384), (32, 768)):
        assert estimate_memory(TTTConfig(**laptop), grid, dim).parameters == laptop_parameters(grid, dim)
    # What a real run holds after a few Adam steps: weights, their gradients, Adam's two moments.
    trainer = Trainer(teacher_out16, TTTConfig(loss="grid+rgb", iters=10, **laptop))
    trainer.step(3)
    params = list(trainer.model.parameters())
    assert all(p.grad is not None for p in params)
    moments = [v for state in trainer.optimizer.state.values() for v in state.values()
               if torch.is_tensor(v) and v.dim() > 0]  # exp_avg and exp_avg_sq ("step" is a scalar)
    held = sum(p.nbytes + p.grad.nbytes for p in params) + sum(v.nbytes for v in moments)
    est = estimate_memory(trainer.config, 16, 384)
    assert len(moments) == 2 * len(params) and est.weights == held
    assert est.total > est.weights + est.activations + est.snapshots  # plus overhead


def test_estimate_grows_with_grid_preset_and_snapshots():
    base = estimate_memory(TTTConfig(preset="laptop", iters=250), 16, 384)
    assert estimate_memory(TTTConfig(preset="laptop", iters=250), 32, 384).activations > 3 * base.activations
    assert estimate_memory(TTTConfig(preset="paper", iters=250), 16, 384).weights > 40 * base.weights
    assert estimate_memory(TTTConfig(preset="laptop", iters=2000), 16, 384).snapshots > base.snapshots
    assert estimate_memory(TTTConfig(preset="laptop", iters=250), 16, 1024).total > base.total


def test_too_large_a_run_is_refused_with_the_limit_named():
    cfg = TTTConfig(preset="paper", iters=250)
    est = estimate_memory(cfg, 32, 384)
    with pytest.raises(ApmVizError) as err:
        check_memory(cfg, 32, 384, limit_bytes=est.total - 1)
    msg = str(err.value)
    assert "\n" not in msg
    for part in ("preset paper", "grid 32x32", "448x448 px", "53.5 M parameters", "the limit is", "smaller preset"):
        assert part in msg
    assert check_memory(cfg, 32, 384, limit_bytes=est.total) == est


def test_trainer_refuses_before_building(teacher_out16, monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "64M")
    with pytest.raises(ApmVizError, match=f"limit is 64 MB \\(set by {MEMORY_LIMIT_ENV}\\)"):
        Trainer(teacher_out16, TTTConfig(preset="paper", iters=10))
    with pytest.raises(ApmVizError, match="preset laptop"):
        IslandsFilm(teacher_out16, TTTConfig(preset="laptop", iters=10))
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "4G")
    assert Trainer(teacher_out16, TTTConfig(preset="laptop", iters=10)).run.status == "running"


@pytest.mark.parametrize("text, value", [("6G", 6 * 2**30), ("512M", 512 * 2**20), ("512MB", 512 * 2**20),
                                         ("2GiB", 2 * 2**30), ("1e9", 10**9), ("123456", 123456)])
def test_limit_from_the_environment(monkeypatch, text, value):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, text)
    assert memory_limit() == (value, f"set by {MEMORY_LIMIT_ENV}")


@pytest.mark.parametrize("text", ["lots", "-1G", "0", "G"])
def test_bad_limit_in_the_environment_is_one_line(monkeypatch, text):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, text)
    with pytest.raises(ApmVizError, match=MEMORY_LIMIT_ENV):
        memory_limit()


def test_default_limit_is_a_fraction_of_free_memory(monkeypatch):
    monkeypatch.delenv(MEMORY_LIMIT_ENV, raising=False)
    free = available_memory()
    assert free is not None and free > 0  # Linux always says
    limit, how = memory_limit()
    assert 0 < limit <= free and "of the memory free now" in how
    assert limit == pytest.approx(free * MEMORY_FRACTION, rel=0.2)  # free memory moves a little meanwhile
    # Every default run of the app and command line fits well within it.
    assert estimate_memory(TTTConfig(preset="laptop"), 32, 384).total < 2**30


def test_cli_refuses_a_too_large_run_with_exit_2(sample_path, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "100M")
    rc = cli.main(["islands", str(sample_path), "--out", str(tmp_path / "out"), "--offline", "--grid", "16",
                   "--preset", "paper", "--iters", "10"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert sum(line.startswith("error:") for line in err) == 1  # one error line, after the run's log lines
    assert err[-1].startswith("error: this run needs about") and "preset paper" in err[-1] and "224x224 px" in err[-1]
    assert not (tmp_path / "out").exists()
