"""Every speed-up computes what the straightforward version computes.

- TTT: fused Adam and skipping the RGB head where nothing reads it, against a
  plain loop (foreach-free Adam, full forward every step).
- t-SNE: the 2-D and 3-D projections of one frame share one neighbour search,
  against each projector searching on its own; the exact neighbour search
  gives openTSNE's own exact affinities; frames that start from scratch are
  openTSNE's own `TSNE.fit`.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from apm_viz.film import IslandsFilm
from apm_viz.islands import Projector, ProjectionConfig, _jitter_if_constant, _prepare
from apm_viz.ttt import Trainer, TTTConfig, build_apm, run_ttt


def reference_run(teacher, cfg: TTTConfig):
    """The plain loop: full forward (RGB included) every step, textbook Adam."""
    g = teacher.grid_size
    model = build_apm(cfg, g, teacher.grid.shape[-1], teacher.patch).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, foreach=False)
    image = teacher.input_tensor()
    grid = torch.from_numpy(teacher.grid.reshape(1, g * g, -1))
    token = torch.from_numpy(teacher.token).unsqueeze(0)
    rgb_target = torch.from_numpy(teacher.pooled_rgb.reshape(1, g * g, 3))
    losses, snaps = [], {}
    for i in range(cfg.iters + 1):
        feats, rgb, pooled = model(image)
        parts = {"grid": F.mse_loss(feats, grid), "token": F.mse_loss(pooled, token),
                 "rgb": F.mse_loss(rgb, rgb_target)}
        loss = sum(parts[t] for t in cfg.terms())
        losses.append(float(loss.detach()))
        snaps[i] = (feats.detach()[0].reshape(g, g, -1).numpy(), rgb.detach()[0].reshape(g, g, 3).numpy())
        if i == cfg.iters:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    return losses, snaps


@pytest.mark.parametrize("loss", ["grid", "token", "grid+rgb"])
def test_fast_trainer_matches_the_plain_loop(teacher_out16, loss):
    cfg = TTTConfig(loss=loss, iters=8, lr=1e-3, snapshots=(0, 3))
    run = run_ttt(teacher_out16, cfg)
    losses, snaps = reference_run(teacher_out16, cfg)
    np.testing.assert_allclose([v for _, v in run.losses], losses, rtol=1e-4)
    assert run.iterations == [0, 3, 8]
    for s in run.snapshots:
        f, rgb = snaps[s.iteration]
        np.testing.assert_allclose(s.field, f, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(s.rgb, rgb, rtol=1e-4, atol=1e-5)


def test_rgb_head_is_skipped_between_snapshots(teacher_out16):
    tr = Trainer(teacher_out16, TTTConfig(loss="grid", iters=4, snapshots=(0,)))
    calls = []
    tr.model.rgb_first.register_forward_hook(lambda *a: calls.append(tr.iteration))
    tr.step(10)
    assert calls == [0, 4]  # the snapshots only


def fields(n=4, g=10, dim=12, seed=0):
    """A drifting sequence of fields with a few regions, like a run's snapshots."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, size=(g, g))
    protos = rng.normal(size=(5, dim))
    out = []
    for t in range(n):
        protos = protos + 0.3 * rng.normal(size=protos.shape)
        out.append(protos[labels] + 0.1 * rng.normal(size=(g, g, dim)))
    return out


@pytest.mark.parametrize("dims", [2, 3])
def test_shared_affinities_give_the_same_frames(dims):
    cfg = ProjectionConfig(dims=dims, perplexity=5, first_iters=60, next_iters=20)
    alone, other, sharing = Projector(cfg), Projector(ProjectionConfig(dims=5 - dims, perplexity=5)), Projector(cfg)
    for f in fields():
        a = alone.add(f)
        assert other.affinity_key(f) == sharing.affinity_key(f)
        aff = other.affinities(f)
        other.add(f, aff)
        b = sharing.add(f, aff)
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("scratch", [True, False])
def test_exact_neighbours_give_opentsnes_exact_affinities(metric, scratch):
    from openTSNE.affinity import MultiscaleMixture, PerplexityBasedNN

    frames = fields(2)
    proj = Projector(ProjectionConfig(dims=3, perplexity=5, first_iters=20, metric=metric))
    if not scratch:
        proj.add(frames[0])
    f = frames[-1]
    ours = proj.affinities(f)
    x = _jitter_if_constant(_prepare(f), proj.config.seed)
    theirs = (MultiscaleMixture(x, 5, method="exact", metric=metric, n_jobs=1) if scratch else
              PerplexityBasedNN(x, perplexity=5, method="exact", metric=metric, n_jobs=1))
    assert ours.P.nnz == theirs.P.nnz
    np.testing.assert_allclose(ours.P.toarray(), theirs.P.toarray(), rtol=1e-9, atol=1e-15)


def test_scratch_frame_equals_opentsne_fit():
    # The same affinities (equal to openTSNE's exact ones to rounding, above):
    # the optimisation is openTSNE's own. Rounding-level changes of P do not
    # stay small over hundreds of steps (openTSNE's gains jump on a sign), so
    # the frame is compared given the affinities.
    from openTSNE import TSNE

    f = fields(1)[0]
    cfg = ProjectionConfig(dims=3, perplexity=5, first_iters=60)
    proj = Projector(cfg)
    aff = proj.affinities(f)
    ours = proj.add(f)
    x = _prepare(f)
    ref = TSNE(n_components=3, perplexity=5, n_iter=60, metric=cfg.metric, initialization=cfg.initialization,
               theta=cfg.theta, negative_gradient_method="bh", random_state=cfg.seed,
               n_jobs=1).fit(_jitter_if_constant(x, cfg.seed), affinities=aff)
    np.testing.assert_array_equal(ours, np.asarray(ref).astype(np.float32))


def test_film_frames_equal_projecting_its_snapshots_alone(teacher_out16):
    live = {"3d": ProjectionConfig(dims=3, perplexity=5, first_iters=60, next_iters=20),
            "2d": ProjectionConfig(dims=2, perplexity=5, first_iters=60, next_iters=20)}
    film = IslandsFilm(teacher_out16, TTTConfig(loss="grid", iters=6, lr=1e-3, snapshots=(0, 3)), live=live)
    while not film.done:
        film.advance(budget=5.0)
    for name, cfg in live.items():
        alone = Projector(cfg)
        for s, c in zip(film.run.snapshots, film.live[name].coords):
            np.testing.assert_array_equal(alone.add(s.field), c)
