"""Several sessions at once, engine side: threads that build, train and load
at the same moment get exactly what they would get alone.

(The app side, three AppTest sessions running TTT at once, is in
test_reliability_app.py.)
"""

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from apm_viz.errors import ApmVizError
from apm_viz.images import load_image
from apm_viz.pipeline import encode
from apm_viz.teachers import create_teacher
from apm_viz.ttt import TTTConfig, build_apm, run_ttt

from test_reliability_images import BAD, gradient, encode as encode_image


def in_threads(fn, args_list):
    """Run fn(*args) for each args at once; returns the results in order."""
    results, errors = [None] * len(args_list), []
    start = threading.Barrier(len(args_list))

    def work(i, args):
        try:
            start.wait()
            results[i] = fn(*args)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i, a)) for i, a in enumerate(args_list)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("trial", range(2))
def test_models_built_at_once_get_the_weights_their_seeds_name(trial):
    seeds = (11, 12, 13)
    alone = [build_apm(TTTConfig(seed=s), 16, 384) for s in seeds]
    together = in_threads(lambda s: build_apm(TTTConfig(seed=s), 16, 384), [(s,) for s in seeds])
    assert all(same_weights(a, b) for a, b in zip(alone, together))


def test_teachers_built_at_once_get_the_weights_their_seeds_name():
    seeds = (21, 22, 23)
    alone = [create_teacher("dinov2-small", weights="random", depth=1, seed=s).model for s in seeds]
    together = in_threads(lambda s: create_teacher("dinov2-small", weights="random", depth=1, seed=s).model,
                          [(s,) for s in seeds])
    assert all(same_weights(a, b) for a, b in zip(alone, together))


def test_runs_at_once_match_runs_alone(small_teacher, sample_path):
    stripes = Image.fromarray(np.kron(gradient(), np.ones((6, 6, 1), np.uint8)))
    images = [load_image(sample_path), load_image(encode_image(stripes, "PNG"))]
    outs = [encode(img, small_teacher, 16) for img in images] + [encode(images[0], small_teacher, 16)]
    configs = [TTTConfig(loss="grid", iters=12, seed=1), TTTConfig(loss="grid", iters=12, seed=2),
               TTTConfig(loss="token", iters=12, seed=3)]
    alone = [run_ttt(o, c) for o, c in zip(outs, configs)]
    together = in_threads(run_ttt, list(zip(outs, configs)))
    for a, b in zip(alone, together):
        assert b.status == "done"
        np.testing.assert_allclose([v for _, v in b.losses], [v for _, v in a.losses], rtol=1e-5)
        np.testing.assert_allclose(b.snapshots[-1].field, a.snapshots[-1].field, rtol=1e-5, atol=1e-6)


def test_images_loaded_at_once_are_each_their_own():
    bad = [BAD[k][1] for k in ("bomb 100000x100000", "huge zTXt", "truncated JPEG")]
    good = [encode_image(Image.fromarray(np.full((30, 40, 3), v, np.uint8)), "PNG") for v in (10, 120, 240)]

    def load(data):
        try:
            return np.asarray(load_image(data).image)
        except ApmVizError as err:
            return str(err)

    for _ in range(3):
        results = in_threads(load, [(d,) for pair in zip(good, bad) for d in pair])
        for v, got in zip((10, 120, 240), results[0::2]):
            assert isinstance(got, np.ndarray) and (got == v).all()
        assert all(isinstance(r, str) for r in results[1::2])
