"""The run worker: films and fits in worker processes under one bounded manager.

Expected results come from the same engine run alone in this process, with the
worker's thread settings; queue places, states and byte counts are counted by hand.
"""

import os
import signal
import time
from dataclasses import replace

import numpy as np
import pytest

from apm_viz.errors import ApmVizError
from apm_viz.film import IslandsFilm
from apm_viz.jobs import FilmView, MemoryJob, film_job, nbytes_of
from apm_viz.ttt import TTTConfig, recommended
from apm_viz.store import Store
from apm_viz.worker import CANCELLED, DONE, FAILED, HELD, PAUSED, QUEUED, RUNNING, RunManager
from apm_viz.worker_process import fix_threads

WAIT = 600  # seconds a test waits for a run on a busy machine before it fails
pytestmark = pytest.mark.timeout(1800)  # worker processes import torch first: slow on a busy machine


@pytest.fixture(scope="module")
def manager():
    m = RunManager(max_runs=3, threads=1)
    assert m.wait_ready(WAIT)
    yield m
    m.shutdown()


@pytest.fixture(scope="module")
def single():
    """One worker process: the second run waits in the queue."""
    m = RunManager(max_runs=1, threads=1)
    assert m.wait_ready(WAIT)
    yield m
    m.shutdown()


@pytest.fixture(scope="module")
def outs(small_teacher, sample_path):
    from apm_viz.images import load_image
    from apm_viz.pipeline import encode

    names = ("chelsea.jpg", "coffee.jpg", "rocket.jpg")
    return [encode(load_image(sample_path.parent / n), small_teacher, 16) for n in names]


def alone(out, config, seed):
    """The same film in this process, with the worker's threads."""
    import torch

    before = torch.get_num_threads()
    limits = fix_threads(1)
    try:
        film = IslandsFilm(out, config, seed=seed)
        while not film.done:
            film.advance(budget=5.0)
        return film
    finally:
        torch.set_num_threads(before)
        limits.restore_original_limits()


def process_state(pid: int) -> str:
    """R, S, T (stopped) ... as /proc/PID/stat says."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def wait_for(condition, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def same_film(view: FilmView, film: IslandsFilm) -> None:
    assert view.run.status == film.run.status
    assert [v for _, v in view.run.losses] == [v for _, v in film.run.losses]  # bit for bit
    assert view.run.iterations == film.run.iterations
    for a, b in zip(view.run.snapshots, film.run.snapshots):
        np.testing.assert_array_equal(a.field, b.field)
    for name in film.coords:
        assert len(view.coords[name]) == len(film.coords[name])
        for a, b in zip(view.coords[name], film.coords[name]):
            np.testing.assert_array_equal(a, b)


def test_three_films_at_once_match_each_alone(manager, outs):
    configs = [recommended("grid", iters=12, seed=s) for s in (31, 32, 33)]
    handles = [manager.submit(film_job(("three", k), o, c, seed=k), owner=f"s{k}")
               for k, (o, c) in enumerate(zip(outs, configs))]
    assert [h.status for h in handles] == [RUNNING] * 3  # three processes, nobody waits
    for h in handles:
        assert manager.wait(h, WAIT) and h.status == DONE, h.message
    for k, (h, o, c) in enumerate(zip(handles, outs, configs)):
        same_film(h.view, alone(o, c, k))
        assert h.view.frames == len(h.view.run.snapshots) == len(c.snapshot_iterations())
        # the PCA preview made a frame of every snapshot too
        assert len(h.view.preview_coords["3d"]) == len(h.view.run.snapshots)


def test_a_finished_film_is_reused_and_holds_no_trainer(manager, outs):
    cfg = recommended("grid", iters=10, seed=34)
    job = film_job("reuse", outs[0], cfg, seed=34)
    h = manager.submit(job, owner="a")
    assert manager.wait(h, WAIT) and h.status == DONE
    again = manager.submit(film_job("reuse", outs[0], cfg, seed=34), owner="b")
    assert again.status == DONE and again.view is h.view and again.job is None
    assert "reuse" in manager.store
    # What it keeps: the teacher output, losses, snapshots and frames; no model, no optimiser.
    v = h.view
    assert not hasattr(v, "trainer") and v.weights is None
    arrays = (v.teacher.grid.nbytes + v.teacher.image.nbytes + v.teacher.pooled_rgb.nbytes + v.teacher.token.nbytes
              + sum(s.field.nbytes + s.rgb.nbytes + s.global_out.nbytes for s in v.run.snapshots)
              + sum(c.nbytes for cs in list(v.coords.values()) + list(v.preview_coords.values()) for c in cs))
    assert arrays <= v.nbytes < arrays + 200_000


def test_the_queue_says_each_runs_place(single, outs):
    cfg = [recommended("grid", iters=10, seed=s) for s in (41, 42, 43)]
    hs = [single.submit(film_job(("q", k), outs[k], c, seed=k), owner="s") for k, c in enumerate(cfg)]
    assert hs[0].status == RUNNING and hs[0].place is None
    assert [h.status for h in hs[1:]] == [QUEUED, QUEUED]
    assert [h.place for h in hs[1:]] == [1, 2]
    hs[1].cancel()  # a queued run leaves the queue at once
    assert hs[1].status == CANCELLED and hs[2].place == 1
    assert single.wait(hs[0], WAIT) and hs[0].status == DONE
    assert single.wait(hs[2], WAIT, until=lambda h: h.status != QUEUED) and hs[2].place is None
    assert single.wait(hs[2], WAIT) and hs[2].status == DONE
    same_film(hs[2].view, alone(outs[2], cfg[2], 2))


def test_pause_stops_the_process_and_resume_gives_the_same_film(manager, outs):
    cfg = recommended("grid", iters=200, seed=44)
    h = manager.submit(film_job("pause", outs[0], cfg, seed=44), owner="s")
    assert manager.wait(h, WAIT, until=lambda h: h.view.iteration >= 5)
    h.pause()
    assert h.status == PAUSED
    pid = manager._slot_of(h).process.pid
    assert wait_for(lambda: process_state(pid) == "T")  # stopped by the kernel, whatever it was doing
    it, version = h.view.iteration, h.version
    time.sleep(1.0)
    assert h.view.iteration == it and h.version == version  # nothing moves while paused
    h.resume()
    assert h.status == RUNNING
    assert manager.wait(h, WAIT) and h.status == DONE
    assert h.view.iteration == 200


def test_cancel_keeps_what_was_done_and_frees_the_process(single, outs):
    cfg = recommended("grid", iters=2000, seed=45)
    h = single.submit(film_job("cancel", outs[1], cfg, seed=45), owner="s")
    nxt = single.submit(film_job("after-cancel", outs[1], recommended("grid", iters=10, seed=46), seed=46), owner="s")
    assert nxt.status == QUEUED
    assert single.wait(h, WAIT, until=lambda h: h.view.frames >= 2)
    h.pause()
    h.cancel()  # also from a paused run
    assert single.wait(h, WAIT) and h.status == CANCELLED
    assert h.view.run.status == "cancelled" and h.view.frames >= 2
    assert h.view.iteration < 2000 and "cancel" not in single.store  # a partial film is not shared
    assert single.wait(nxt, WAIT) and nxt.status == DONE


def test_release_and_closed_sessions_cancel_runs_nobody_holds(manager, outs):
    cfg = recommended("grid", iters=3000, seed=47)
    a = manager.submit(film_job("shared", outs[2], cfg, seed=47), owner="one")
    b = manager.submit(film_job("shared", outs[2], cfg, seed=47), owner="two")
    assert a is b and a.owners == {"one", "two"}  # the second session joins the live run
    manager.release(a, "one")
    assert a.live and not a.cancel_requested
    alive = {"two": False}
    assert manager.reap(lambda owner: alive.get(owner, True)) == 1  # session "two" closed
    assert manager.wait(a, WAIT) and a.status == CANCELLED


def test_step_holds_after_the_iterations_asked_for(manager, outs):
    cfg = recommended("grid", iters=100, seed=48)
    h = manager.submit(film_job("step", outs[0], cfg, seed=48), owner="s", start=False)
    h.step(10)
    assert manager.wait(h, WAIT, until=lambda h: h.status == HELD)
    v = h.view
    assert v.iteration == 10 and v.run.iterations == [0, 1, 2, 3, 5, 8]
    assert v.frames == 6  # every snapshot taken so far is projected before it holds
    h.step(10)
    assert manager.wait(h, WAIT, until=lambda h: h.status == HELD and h.view.iteration == 20)
    h.resume()
    assert manager.wait(h, WAIT) and h.status == DONE
    same_film(h.view, alone(outs[0], cfg, 48))  # stepping changes nothing in the result


def test_a_failing_job_says_why_and_the_worker_lives_on(single, outs):
    bad = replace(outs[0], image=outs[0].image[:100, :100])  # teacher output and image disagree
    h = single.submit(film_job("bad", bad, recommended("grid", iters=10, seed=49), seed=49), owner="s")
    assert single.wait(h, WAIT) and h.status == FAILED
    assert h.message == "teacher output and image size disagree"
    ok = single.submit(film_job("ok", outs[0], recommended("grid", iters=10, seed=50), seed=50), owner="s")
    assert single.wait(ok, WAIT) and ok.status == DONE


def test_a_killed_worker_fails_its_run_and_is_replaced(single, outs):
    h = single.submit(film_job("killed", outs[0], recommended("grid", iters=5000, seed=51), seed=51), owner="s")
    assert single.wait(h, WAIT, until=lambda h: h.view.iteration > 0)
    pid = single._slot_of(h).process.pid
    os.kill(pid, signal.SIGKILL)
    assert single.wait(h, WAIT) and h.status == FAILED and "stopped unexpectedly" in h.message
    assert single.wait_ready(WAIT) and single.pids()[0] != pid
    ok = single.submit(film_job("after-kill", outs[0], recommended("grid", iters=10, seed=52), seed=52), owner="s")
    assert single.wait(ok, WAIT) and ok.status == DONE


def test_a_run_too_large_is_refused_before_it_is_queued(manager, outs, monkeypatch):
    monkeypatch.setenv("APM_VIZ_MEMORY_LIMIT", "200M")
    with pytest.raises(ApmVizError, match="limit is 200 MB"):
        manager.submit(film_job("huge", outs[0], TTTConfig(preset="paper", iters=10)), owner="s")
    assert "huge" not in {h.key for h in manager.handles()}


def test_teacher_vs_apm_fit_sends_its_final_model(manager, outs):
    import torch

    from apm_viz.compare import converging_config

    cfg = converging_config("grid", iters=10, seed=53)
    h = manager.submit(film_job("tva", outs[1], cfg, seed=53, live={}, with_model=True), owner="s")
    assert manager.wait(h, WAIT) and h.status == DONE
    film = IslandsFilm(outs[1], cfg, live={}, seed=53)
    limits = fix_threads(1)
    while not film.done:
        film.advance(5.0)
    limits.restore_original_limits()
    model = h.view.model()
    for k, v in film.trainer.model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_memory_fit_on_the_worker(manager, outs):
    from apm_viz.interpolate import MemoryTrainer, memory_config

    cfg = memory_config(iters=15, seed=54)
    h = manager.submit(MemoryJob("mem", outs[:2], cfg, ["a", "b"]), owner="s")
    assert manager.wait(h, WAIT) and h.status == DONE
    t = MemoryTrainer(outs[:2], cfg, ["a", "b"])
    while not t.run.finished:
        t.step(5)
    mine, theirs = h.view.memory(), t.memory()
    assert [v for _, v in h.view.run.losses] == [v for _, v in t.run.losses]
    np.testing.assert_array_equal(mine.columns, theirs.columns)
    assert mine.names == ["a", "b"]


def test_the_store_is_bounded_in_bytes():
    class V:
        def __init__(self, n):
            self.nbytes = n

    s = Store(1000)
    s.put("a", V(400))
    s.put("b", V(400))
    assert len(s) == 2 and s.nbytes == 800
    s.get("a")  # a was read: b is now the oldest
    s.put("c", V(300))
    assert "b" not in s and "a" in s and "c" in s and s.nbytes == 700
    s.put("d", V(2000))  # larger than the whole store: not kept, and it pushes nothing else out uselessly
    assert "d" not in s


def test_nbytes_counts_arrays_once():
    a = np.zeros((10, 10), np.float32)  # 400 bytes
    assert nbytes_of([a, a], {"x": a}) == 400
    assert nbytes_of([a, np.zeros(5, np.float64)]) == 440
