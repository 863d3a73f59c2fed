"""Test-time classification of one image: zero-shot baseline, APM TTT, top-k bookkeeping."""

import numpy as np
import pytest
import torch

from apm_viz.classify import RECIPES, ClassifyTTT, classify_image, prepare, recipe, result_dict, topk
from apm_viz.clip import create_clip
from apm_viz.errors import ApmVizError
from apm_viz.images import load_image
from apm_viz.labels import load_labels

ITERS = 4


@pytest.fixture(scope="module")
def clip():
    return create_clip("tiny", seed=0)


@pytest.fixture(scope="module")
def cifar(clip):
    return clip.classifier(load_labels("cifar10"), "single")


@pytest.fixture(scope="module")
def result(clip, cifar, sample_path):
    return classify_image(sample_path, clip, cifar, recipe("laptop", iters=ITERS))


def _softmax_cos(vec, rows, scale):
    cos = torch.nn.functional.cosine_similarity(torch.tensor(vec, dtype=torch.float64)[None],
                                                torch.tensor(rows, dtype=torch.float64), dim=1)
    return torch.softmax(cos * scale, dim=0).numpy()


def test_topk_order_and_ties():
    assert topk(np.array([0.1, 0.3, 0.3, 0.2, 0.05]), 3) == [1, 2, 3]
    assert topk(np.array([0.5, 0.5]), 5) == [0, 1]


def test_teacher_top5_is_clips_own_zero_shot(result, clip, cifar, sample_path):
    image = load_image(sample_path)
    clip_image, _ = prepare(image, clip)
    emb = clip.encode(clip_image).embedding
    p = _softmax_cos(emb, cifar.weights, cifar.logit_scale)
    order = sorted(range(10), key=lambda i: -p[i])[:5]
    got = result.teacher_topk(5)
    assert [lab for lab, _ in got] == [cifar.labels.names[i] for i in order]
    np.testing.assert_allclose([q for _, q in got], p[order], rtol=1e-4)


def test_apm_classified_at_every_iteration_from_its_own_global_output(result, cifar):
    run = result.run
    assert run.status == "done" and len(run.losses) == ITERS + 1 and result.iterations == ITERS + 1
    probs = result.probs()
    assert probs.shape == (ITERS + 1, 10)
    snaps = {s.iteration: s for s in run.snapshots}
    assert set(range(ITERS + 1)) <= set(snaps)  # default snapshots keep 0..3 and the last
    for i in range(ITERS + 1):
        np.testing.assert_array_equal(result.globals[i], snaps[i].global_out)
        np.testing.assert_allclose(probs[i], _softmax_cos(snaps[i].global_out, cifar.weights, cifar.logit_scale),
                                   rtol=1e-4, atol=1e-7)
    per = result.per_iteration()
    assert [i for i, _, _ in per] == list(range(ITERS + 1))
    for i, lab, p in per:
        assert lab == cifar.labels.names[int(np.argmax(probs[i]))] and p == pytest.approx(float(probs[i].max()))
    assert result.apm_topk(5) == result.apm_topk(5, iteration=ITERS)
    assert result.apm_topk(1, iteration=0)[0][0] == per[0][1]
    top = result.top_classes(5)
    assert top[:5] == topk(result.teacher_probs, 5) and len(set(top)) == len(top)


def test_token_loss_falls_toward_the_clip_embedding(result):
    losses = [v for _, v in result.run.losses]
    assert losses[-1] < losses[0]
    target = result.view.embedding
    np.testing.assert_allclose(losses[0], np.mean((result.globals[0] - target) ** 2), rtol=1e-4)


def test_paper_recipe_is_the_authors_schedule_and_init(clip, cifar, sample_path):
    cfg = RECIPES["paper"]
    assert (cfg.preset, cfg.loss, cfg.iters, cfg.lr, cfg.lr_step, cfg.init_std) == \
        ("paper-ttt", "token", 1200, 1e-4, 200, 0.01)
    clip_image, _ = prepare(load_image(sample_path), clip)
    c = ClassifyTTT(clip.encode(clip_image), cifar, recipe("paper", iters=2))
    sched = c.trainer.scheduler
    assert isinstance(sched, torch.optim.lr_scheduler.StepLR) and sched.step_size == 200 and sched.gamma == 0.1
    w = c.trainer.model.hidden[0].weight.detach()
    assert w.shape == (2048, 4096)  # 4096 -> 2048, the TTT MLP's second layer
    assert float(w.std()) == pytest.approx(0.01, rel=0.02) and abs(float(w.mean())) < 1e-3


def test_grid_only_loss_is_refused(clip, cifar, sample_path):
    clip_image, _ = prepare(load_image(sample_path), clip)
    with pytest.raises(ApmVizError, match="token"):
        ClassifyTTT(clip.encode(clip_image), cifar, recipe("laptop", loss="grid", iters=1))


def test_corrupted_image_is_what_clip_sees(clip, sample_path):
    image = load_image(sample_path)
    clean, a0 = prepare(image, clip)
    fog, a1 = prepare(image, clip, "fog", 5, seed=1)
    assert clean.shape == fog.shape == (224, 224, 3) and a0.name == "clean"
    assert a1.name == "fog" and a1.severity == 5 and a1.library == "imagecorruptions-imaug"
    assert np.abs(fog - clean).mean() > 0.05


def test_result_dict_holds_what_classify_writes(result):
    d = result_dict(result, {"iters": ITERS})
    assert len(d["teacher_top5"]) == 5 and len(d["apm_top5"]) == 5
    probs = [p for _, p in d["apm_top5"]]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-6
    assert len(d["per_iteration"]) == ITERS + 1 and d["per_iteration"][0][0] == 0
    assert d["teacher"]["weights_source"] == "random" and "meaningless" in d["teacher"]["warning"]
    assert d["corruption"]["name"] == "clean" and d["settings"] == {"iters": ITERS}


def test_an_islands_film_can_carry_the_classification(clip, cifar, sample_path):
    """One run for both: the film's trainer feeds the islands frames and the per-iteration classes."""
    from apm_viz.film import IslandsFilm
    from apm_viz.islands import ProjectionConfig

    clip_image, _ = prepare(load_image(sample_path), clip)
    view = clip.encode(clip_image)
    config = recipe("laptop", iters=3)
    film = IslandsFilm(view.teacher, config, live={"pca": ProjectionConfig(method="pca", dims=3)})
    c = ClassifyTTT(view, cifar, config, trainer=film.trainer)
    while not film.done:
        film.advance(budget=5.0)
    assert c.run.iterations == 4 and film.frames == len(film.run.snapshots)
    for s in film.run.snapshots:
        np.testing.assert_array_equal(c.run.globals[s.iteration], s.global_out)
    with pytest.raises(ApmVizError, match="fresh trainer"):
        ClassifyTTT(view, cifar, config, trainer=film.trainer)
