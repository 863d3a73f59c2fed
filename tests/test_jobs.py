"""The film job's worker half on its own (no worker process): what each update carries."""

from apm_viz.jobs import film_job, warm_up
from apm_viz.ttt import recommended


def test_each_snapshot_goes_out_with_its_preview(teacher_out16):
    """A snapshot and its PCA preview frame travel in one update, so the page redraws once for both."""
    cfg = recommended("grid", preset="laptop", iters=3)
    work = film_job("k", teacher_out16, cfg).open()
    snapshots = previews = updates = 0
    while not work.finished:
        u = work.step()
        updates += 1
        snapshots += len(u["snapshots"])
        previews += len(u["preview"]["3d"])
        assert previews == snapshots, (u["iteration"], snapshots, previews)
        assert all(c.shape == (16 * 16, 3) for c in u["preview"]["3d"])  # one 3-D point per location
    assert snapshots == 4  # iterations 0, 1, 2, 3 (hand count)
    assert updates >= 2


def test_warm_up_runs_in_a_plain_process():
    warm_up()  # a tiny film to its first preview; a worker process runs it before it says "ready"
