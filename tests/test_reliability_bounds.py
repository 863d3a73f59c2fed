"""Memory stays bounded however many sessions and runs: the caches of teachers,
the store of finished films (bounded in bytes; more in test_worker.py) and the
runs each session keeps."""

import threading

from apm_viz.store import Store
from ui.cache import get_teacher
from ui.runs import RUNS_PER_PAGE

from test_reliability_app import films, new_app, small, click


class Sized:
    """A stored view of a given size (the store reads only `nbytes`)."""

    def __init__(self, nbytes: int):
        self.nbytes = nbytes


def test_the_film_store_stays_bounded_in_bytes_under_threads():
    store = Store(8 * 100)

    def writer(i):
        for j in range(300):
            store.put((i, j), Sized(100))
            store.get((i, j - 1))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store) == 8 and store.nbytes == 800


def test_a_film_one_session_stores_is_found_by_another_and_the_oldest_goes():
    """Sessions run in threads of their own: nine films of 100 bytes put by one thread into a
    store of 800 bytes are found by another, but for the oldest."""
    store = Store(800)
    made = [("film", k) for k in range(9)]
    views = {k: Sized(100) for k in made}
    found = {}
    writer = threading.Thread(target=lambda: [store.put(k, views[k]) for k in made])
    writer.start()
    writer.join()
    reader = threading.Thread(target=lambda: found.update((k, store.get(k)) for k in made))
    reader.start()
    reader.join()
    assert found[made[0]] is None
    assert all(found[k] is views[k] for k in made[1:])


def test_teacher_cache_keeps_three_models():
    # The registry's smallest teacher keeps this cheap; the cache does not care which model it holds.
    name = "dinov2-small"
    built = [get_teacher(name, "random", False, seed) for seed in (101, 102, 103, 104)]
    assert len({id(t) for t in built}) == 4
    assert get_teacher(name, "random", False, 104) is built[3]  # kept
    assert get_teacher(name, "random", False, 101) is not built[0]  # the oldest was dropped


def test_a_session_keeps_at_most_runs_per_page():
    at = new_app(seed=7331)  # settings no other test finishes: a stored film of them would disable Step
    small(at, iters=10)
    keys = []
    for iters in (10, 20, 30, 40):
        at.number_input(key="iters").set_value(iters)
        at.run()
        click(at, "Step")
        assert not at.exception
        keys.append(next(k for k in films(at) if k[-1] == iters))
    assert RUNS_PER_PAGE == 3
    assert list(films(at)) == keys[1:]  # the oldest went first
