"""The Ray runner against a real local Ray cluster (2 CPUs, no dashboard, small object store).

The rows equal the in-process runner's; a worker killed by its pid mid-task
has its task retried, and nothing is lost or written twice; Ctrl-C keeps the
rows written and the next run resumes; films come back whole.
"""

import json
import os
import signal
import threading
import time

import numpy as np
import pytest
from PIL import Image

import ray
from apm_viz import evaluate, films
from apm_viz.classify import recipe
from apm_viz.islands import ProjectionConfig
from apm_viz.pipeline import Settings
from apm_viz.ray_runner import RayOptions, RayRunner, connect
from apm_viz.results import RESULTS
from apm_viz.ttt import TTTConfig

pytestmark = pytest.mark.slow
#: Enough iterations that an item is still running when the test kills its worker.
SETTINGS = evaluate.EvalSettings(clip="tiny", labels="cifar10", templates="single", ttt=recipe("laptop", iters=40))
FILM = Settings(grid=16, allow_download=False, ttt=TTTConfig(iters=2),
                projection=ProjectionConfig(method="pca", dims=3))


@pytest.fixture(scope="module")
def cluster():
    assert connect("local", num_cpus=2, object_store_memory=80 * 2**20)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _picture(seed, size=(48, 40)):
    return Image.fromarray((np.random.RandomState(seed).rand(size[1], size[0], 3) * 255).astype(np.uint8))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """2 classes x 2 pictures: 4 items, clean."""
    root = tmp_path_factory.mktemp("set")
    for k, c in enumerate(("cat", "ship")):
        (root / c).mkdir()
        for i in range(2):
            _picture(10 * k + i).save(root / c / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory):
    """The in-process runner's rows, by id."""
    out = tmp_path_factory.mktemp("in-process")
    evaluate.run(dataset, SETTINGS, out, ["clean"], [0])
    return _rows(out)


def _lines(out):
    return [json.loads(x) for x in (out / RESULTS).read_text().splitlines()]


def _rows(out):
    rows = _lines(out)
    assert len({r["id"] for r in rows}) == len(rows), "an id written twice"
    return {r["id"]: r for r in rows}


def _assert_same_rows(mine, theirs):
    assert sorted(mine) == sorted(theirs)
    for k, a in mine.items():
        b = theirs[k]
        for key in ("teacher_top5", "apm_top5", "apm_top1_at", "teacher_correct", "apm_correct", "iterations",
                    "status", "applied", "image_sha256"):
            assert a[key] == b[key], (k, key)
        for key in ("teacher_p_true", "apm_p_true", "loss_first", "loss_last"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-7), (k, key)


def test_rows_equal_the_in_process_runner(cluster, dataset, reference, tmp_path):
    runner = RayRunner(RayOptions(address=None))
    summary = evaluate.run(dataset, SETTINGS, tmp_path, ["clean"], [0], runner=runner)
    _assert_same_rows(_rows(tmp_path), reference)
    assert summary["rows"] == 4 and summary["cells"][0]["n"] == 4
    # Two worker processes served the four items: each built its CLIP once and kept it.
    assert set(runner.ran_on) == set(reference) and len(set(runner.ran_on.values())) <= 2
    assert "Random-init CLIP" in (tmp_path / "summary.md").read_text()
    assert runner.actors == []  # the pool is gone after the run


def test_a_killed_worker_has_its_task_retried(cluster, dataset, reference, tmp_path):
    runner = RayRunner(RayOptions(address=None))
    killed, finished = {}, threading.Event()

    def kill_one():
        while not killed and not finished.is_set():
            for pid, item in runner.running(timeout=1.0).items():
                os.kill(pid, signal.SIGKILL)  # mid-task: the actor says it is running `item`
                killed.update(pid=pid, item=item)
                break
            time.sleep(0.02)

    t = threading.Thread(target=kill_one, daemon=True)
    t.start()
    try:
        evaluate.run(dataset, SETTINGS, tmp_path, ["clean"], [0], runner=runner)
    finally:
        finished.set()
    t.join(timeout=60)
    assert killed, "no item was seen running"
    with pytest.raises(ProcessLookupError):
        os.kill(killed["pid"], 0)  # that process is gone
    died = [r for r in runner.restarts if r[1] == killed["pid"]]
    assert died, runner.restarts
    item, _, new_pid = died[0]
    assert new_pid != killed["pid"] and runner.ran_on[item] == new_pid
    # Nothing lost, nothing written twice, and the retried row is the in-process one.
    assert len(_lines(tmp_path)) == 4
    _assert_same_rows(_rows(tmp_path), reference)


def test_ctrl_c_keeps_rows_and_the_next_run_resumes(cluster, dataset, reference, tmp_path):
    seen = []

    def interrupt_after_first(done, total, row):
        if row is not None:
            seen.append(row["id"])
            if len(seen) == 1:  # a Ctrl-C in the driver's loop, while the others still run
                raise KeyboardInterrupt

    runner = RayRunner(RayOptions(address=None))
    with pytest.raises(KeyboardInterrupt):
        evaluate.run(dataset, SETTINGS, tmp_path, ["clean"], [0], runner=runner, progress=interrupt_after_first)
        time.sleep(30)  # not reached unless the interrupt came after the last row
    kept = (tmp_path / RESULTS).read_text().splitlines()
    assert len(kept) == 1 and json.loads(kept[0])["id"] == seen[0]  # committed before the progress call that stopped the run
    assert json.loads((tmp_path / "summary.json").read_text())["rows"] == len(kept)
    assert runner.actors == []

    starts = []
    evaluate.run(dataset, SETTINGS, tmp_path, ["clean"], [0], runner=RayRunner(RayOptions(address=None)),
                 progress=lambda d, t, r: starts.append((d, t)) if r is None else None)
    assert starts == [(len(kept), 4)]
    assert (tmp_path / RESULTS).read_text().splitlines()[:len(kept)] == kept  # the first rows untouched
    assert len(_lines(tmp_path)) == 4
    _assert_same_rows(_rows(tmp_path), reference)


def test_films_on_ray_equal_the_in_process_films(cluster, tmp_path):
    folder = tmp_path / "pictures"
    (folder / "more").mkdir(parents=True)
    _picture(1, (64, 64)).save(folder / "a.png")
    _picture(2, (80, 64)).save(folder / "more" / "b.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    here, there = tmp_path / "here", tmp_path / "there"
    films.run(folder, FILM, here)
    runner = RayRunner(RayOptions(address=None, workers=2))
    summary = films.run(folder, FILM, there, runner=runner)
    a, b = _rows(here), _rows(there)
    assert sorted(a) == sorted(b) == ["a.png", "broken.png", "more/b.jpg"]
    assert "error" in b["broken.png"] and "broken.png" in b["broken.png"]["error"]
    for k in ("a.png", "more/b.jpg"):
        assert a[k]["islands"] == b[k]["islands"] and a[k]["teacher_islands"] == b[k]["teacher_islands"]
        assert a[k]["image_sha256"] == b[k]["image_sha256"]
        assert b[k]["loss_last"] == pytest.approx(a[k]["loss_last"], rel=1e-4)
        film = there / b[k]["film"]
        metrics = json.loads((film / "metrics.json").read_text())
        assert metrics["islands"] == b[k]["islands"]  # the row is the film's own metrics
        frames = sorted(p.name for p in (film / "frames").iterdir())
        assert frames == [f"iter_{i:04d}.png" for i, _ in metrics["islands"]]
        assert Image.open(film / "islands.gif").n_frames == len(frames)
        assert sorted(p.name for p in film.iterdir()) == sorted(p.name for p in (here / a[k]["film"]).iterdir())
    assert [r["id"] for r in summary["images"]] == ["a.png", "broken.png", "more/b.jpg"]
    assert summary["films"] == 2 and summary["errors"] == 1
    assert not list(there.rglob("*.partial"))
