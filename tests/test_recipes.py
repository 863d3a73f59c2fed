"""The islands experiment's one rule (supervision, query, recipe) and the authors' recipe."""

import io

import numpy as np
import pytest
from PIL import Image

from apm_viz.cli import build_parser, settings_from_args
from apm_viz.errors import ApmVizError
from apm_viz.images import load_image
from apm_viz.interpolate import memory_config
from apm_viz.islands import Projector, colorize, independent_frame, label_islands
from apm_viz.pipeline import Settings, encode
from apm_viz.recipes import islands_config, islands_projection, resolve_loss
from apm_viz.ttt import GRID_DEFAULTS, Trainer, run_ttt


def test_auto_is_token_supervision_with_the_figures_query():
    cfg = islands_config()
    assert cfg.loss == "token" and resolve_loss("auto") == "token"
    apm = cfg.apm_config()
    assert apm.local_patch and apm.pooling == "mean" and apm.init_std is None
    assert cfg.lr == 1e-4 and cfg.lr_step is None and cfg.iters == 250
    assert not islands_config(query="authors").apm_config().local_patch
    grid = islands_config("grid")  # grid supervision keeps its fitting defaults
    assert grid.lr == GRID_DEFAULTS["lr"] and grid.pos_scale == GRID_DEFAULTS["pos_scale"] and grid.local_patch
    # The interpolation memory decodes trigger columns alone: no I_xy in its query.
    assert not memory_config().apm_config().local_patch
    with pytest.raises(ApmVizError, match="unknown query"):
        islands_config(query="patch")
    with pytest.raises(ApmVizError, match="unknown recipe"):
        islands_config(recipe="paper")


def test_the_command_line_and_settings_default_to_the_same_rule():
    args = build_parser().parse_args(["islands", "x.jpg", "--out", "o"])
    s = settings_from_args(args)
    assert s.ttt == islands_config(preset="laptop", seed=0) == Settings().ttt
    assert s.recipe == "aligned" and s.projection.method == "tsne" and s.projection.aligned


def test_the_authors_recipe_is_their_code_settings():
    args = build_parser().parse_args(["export", "x.jpg", "--out", "o", "--recipe", "authors", "--seed", "4"])
    s = settings_from_args(args)
    apm = s.ttt.apm_config()
    assert s.recipe == "authors" and s.ttt.loss == "token"
    assert not apm.local_patch and apm.pooling == "attention" and apm.attention_heads == 8
    assert apm.init_std == 0.01 and s.ttt.lr == 1e-4 and s.ttt.lr_step == 200 and s.ttt.iters == 1200
    p = s.projection
    assert (p.method, p.dims, p.perplexity, p.initialization, p.aligned, p.seed) == \
        ("sklearn-tsne", 3, 3.0, "random", False, 4)
    # Every option one flag away, and 0 switches a recipe's init or schedule off.
    args = build_parser().parse_args(["islands", "x.jpg", "--out", "o", "--recipe", "authors", "--query", "figure",
                                      "--pooling", "mean", "--init-std", "0", "--lr-step", "0", "--iters", "30",
                                      "--components", "1"])
    s = settings_from_args(args)
    apm = s.ttt.apm_config()
    assert apm.local_patch and apm.pooling == "mean" and apm.init_std is None and s.ttt.lr_step is None
    assert s.ttt.iters == 30 and s.projection.dims == 1


def test_the_authors_schedule_steps_the_learning_rate(teacher_out16):
    trainer = Trainer(teacher_out16, islands_config(recipe="authors", iters=3))
    assert trainer.scheduler.step_size == 200 and trainer.scheduler.gamma == pytest.approx(0.1)
    assert trainer.model.pool_attn.num_heads == 8
    w = trainer.model.hidden[0].weight.detach().numpy()
    assert abs(w.std() - 0.01) < 0.001 and abs(w.mean()) < 0.001


def test_independent_frames_are_scikit_learn_tsne_each_on_its_own():
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    fields = [rng.normal(size=(8, 8, 16)) for _ in range(2)]
    cfg = islands_projection("authors", seed=3)
    proj = Projector(cfg)
    for f in fields:
        proj.add(f)
    res = proj.result()
    x = fields[1].reshape(64, 16) - fields[1].reshape(64, 16).mean(0)
    with threadpool_limits(1):  # frame 1 of seed 3: scikit-learn's own TSNE at seed 4
        direct = TSNE(n_components=3, perplexity=3, init="random", random_state=3 + 1).fit_transform(
            x / np.sqrt((x ** 2).sum(1).mean()))
    assert np.allclose(res.coords[1], direct, atol=1e-3)
    assert np.array_equal(res.coords[1], independent_frame(fields[1], 1, cfg))
    for c in res.colors:  # each frame scaled by its own min and max, jointly over the 3 components
        assert c.min() == pytest.approx(0.0) and c.max() == pytest.approx(1.0)
    gray = colorize([np.arange(4.0).reshape(4, 1)], (2, 2))[0]
    assert np.allclose(gray[..., 0], [[0, 1 / 3], [2 / 3, 1]]) and np.array_equal(gray[..., 0], gray[..., 2])


def halves_image():
    a = np.zeros((224, 224, 3), np.uint8)
    a[:, :112] = (220, 60, 40)
    a[:, 112:] = (40, 90, 210)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return load_image(buf.getvalue(), name="halves.png")


def red_half(out) -> np.ndarray:
    """(h, w) bool: where the image, average-pooled to the grid, is the red half (read from the pixels)."""
    rgb = out.pooled_rgb
    return rgb[..., 0] > rgb[..., 2]


def split_along(labels: np.ndarray, half: np.ndarray) -> bool:
    """Every island lies in one half, and each half has one of its own."""
    inside, outside = set(labels[half].ravel()) - {-1}, set(labels[~half].ravel()) - {-1}
    return bool(inside) and bool(outside) and not inside & outside


def test_two_flat_halves_split_with_the_default_query_not_with_the_authors(small_teacher):
    out = encode(halves_image(), small_teacher, 16)
    half = red_half(out)
    assert half.sum() == 128 and half[:, :8].all()  # the image's left half, as drawn
    default = run_ttt(out, islands_config(iters=10, snapshots=()))
    authors = run_ttt(out, islands_config(query="authors", iters=10, snapshots=()))
    assert default.losses[-1][1] < default.losses[0][1] and authors.losses[-1][1] < authors.losses[0][1]
    labels = label_islands(default.snapshots[-1].field)
    assert split_along(labels, half)
    # Each half is one island: the flat halves give two flat islands, and nothing else.
    assert len(set(labels[half].ravel())) == 1 and len(set(labels[~half].ravel())) == 1
    assert not split_along(label_islands(authors.snapshots[-1].field), half)
