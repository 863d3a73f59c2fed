"""One image's test-time classification as a run-worker job.

The expected result is the same classification computed in this process with
the engine directly (`ClassifyTTT` on CLIP's view, the worker's thread settings).
"""

import numpy as np
import pytest

from apm_viz.classify import ClassifyTTT, prepare, recipe
from apm_viz.classify_job import classify_job
from apm_viz.clip import create_clip, input_size
from apm_viz.errors import ApmVizError
from apm_viz.evaluate import EvalSettings
from apm_viz.images import load_image
from apm_viz.labels import load_labels
from apm_viz.worker import CANCELLED, DONE, FAILED, RunManager
from apm_viz.worker_process import fix_threads

WAIT = 600  # seconds a test waits for a run on a busy machine before it fails
ITERS = 6


@pytest.fixture(scope="module")
def manager():
    m = RunManager(max_runs=1, threads=1)
    assert m.wait_ready(WAIT)
    yield m
    m.shutdown()


def settings(iters: int = ITERS, seed: int = 3, **kw) -> EvalSettings:
    base = dict(clip="tiny", weights="random", labels="cifar10", templates="single", seed=seed,
                ttt=recipe("laptop", iters=iters, seed=seed))
    base.update(kw)
    return EvalSettings(**base)


@pytest.fixture(scope="module")
def picture(sample_path):
    image = load_image(sample_path)
    clip_image, applied = prepare(image, input_size("tiny"), "pixelate", 3, seed=1)
    return image, clip_image, applied


def job(picture, s: EvalSettings, key):
    image, clip_image, applied = picture
    return classify_job(key, clip_image, s, applied, image.name, image.sha256)


def alone(picture, s: EvalSettings):
    """The same classification in this process, with the worker's threads."""
    import torch

    image, clip_image, applied = picture
    before = torch.get_num_threads()
    limits = fix_threads(1)
    try:
        clip = create_clip(s.clip, s.weights, seed=s.seed)
        classifier = clip.classifier(load_labels(s.labels), s.templates)
        ttt = ClassifyTTT(clip.encode(clip_image), classifier, s.ttt, applied, image.name, image.sha256)
        while not ttt.run.finished:
            ttt.step(1)
        return ttt.run
    finally:
        torch.set_num_threads(before)
        limits.restore_original_limits()


def test_input_size_is_open_clips_own():
    assert input_size("tiny") == create_clip("tiny", "random").size == 224
    with pytest.raises(ApmVizError, match="unknown CLIP"):
        input_size("vit-h-99")


def test_the_job_gives_what_classify_ttt_gives_directly(manager, picture):
    s = settings()
    h = manager.submit(job(picture, s, ("same", s)))
    assert manager.wait(h, WAIT) and h.status == DONE, h.message
    got, want = h.view.result, alone(picture, s)
    assert got.run.status == want.run.status == "done"
    assert [v for _, v in got.run.losses] == [v for _, v in want.run.losses]  # bit for bit
    assert len(got.globals) == len(want.globals) == ITERS + 1
    for a, b in zip(got.globals, want.globals):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got.teacher_probs, want.teacher_probs)
    np.testing.assert_array_equal(got.view.clip_image, picture[1])
    assert got.teacher_topk(5) == want.teacher_topk(5)
    assert got.apm_topk(5, 2) == want.apm_topk(5, 2)
    assert got.run.iterations == want.run.iterations
    for a, b in zip(got.run.snapshots, want.run.snapshots):
        np.testing.assert_array_equal(a.field, b.field)
    assert got.applied.name == "pixelate" and got.applied.severity == 3
    assert got.labels == load_labels("cifar10").names
    # A finished result is reused for the same key; its size is counted.
    again = manager.submit(job(picture, s, ("same", s)))
    assert again.status == DONE and again.view is h.view
    assert h.view.nbytes >= got.classifier.weights.nbytes + picture[1].nbytes


def test_another_seed_gives_another_apm(manager, picture):
    a, b = settings(iters=2, seed=5), settings(iters=2, seed=6)
    ha, hb = manager.submit(job(picture, a, ("seed", 5))), manager.submit(job(picture, b, ("seed", 6)))
    assert manager.wait(ha, WAIT) and manager.wait(hb, WAIT)
    assert ha.status == hb.status == DONE
    assert not np.array_equal(ha.view.result.globals[0], hb.view.result.globals[0])


def test_cancel_keeps_what_was_done(manager, picture):
    s = settings(iters=100000, seed=7)
    h = manager.submit(job(picture, s, ("cancel", s)))
    assert manager.wait(h, WAIT, until=lambda h: h.view.result is not None and h.view.iteration >= 2)
    h.cancel()
    assert manager.wait(h, WAIT) and h.status == CANCELLED
    r = h.view.result
    assert r.run.status == "cancelled" and 2 <= len(r.globals) < 100000
    assert len(r.globals) == len(r.run.losses)
    assert not h.view.complete and manager.finished(h.key) is None


def test_bad_labels_are_refused_in_one_line(manager, picture, tmp_path):
    bad = tmp_path / "labels.txt"
    bad.write_text("only one\n")
    with pytest.raises(ApmVizError) as err:
        manager.submit(job(picture, settings(labels=str(bad)), ("bad", 1)))
    assert "\n" not in str(err.value) and "labels.txt" in str(err.value)


def test_a_broken_weights_file_fails_the_run_in_one_line(manager, picture, tmp_path):
    broken = tmp_path / "clip.safetensors"
    broken.write_bytes(b"not a checkpoint")
    h = manager.submit(job(picture, settings(weights=str(broken)), ("broken", 1)))
    assert manager.wait(h, WAIT) and h.status == FAILED
    assert "\n" not in h.message and "clip.safetensors" in h.message
    ok = manager.submit(job(picture, settings(iters=1), ("after", 1)))  # the worker lives on
    assert manager.wait(ok, WAIT) and ok.status == DONE
