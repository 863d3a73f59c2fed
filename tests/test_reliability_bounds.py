"""Memory stays bounded however many sessions and runs: the caches of teachers
and finished films, and the films each session keeps."""

import threading
import uuid

from ui.cache import BoundedStore, finished_films, get_teacher
from ui.state import FILMS_PER_SESSION

from test_reliability_app import films, new_app, small, click


def test_bounded_store_is_an_lru_of_fixed_size():
    store = BoundedStore(capacity=3)
    for k in "abcd":
        store.put(k, k.upper())
    assert len(store) == 3 and store.get("a") is None
    assert store.get("b") == "B"  # b is now the most recent
    store.put("e", "E")
    assert store.get("c") is None and store.get("b") == "B" and len(store) == 3


def test_bounded_store_stays_bounded_under_threads():
    store = BoundedStore(capacity=8)

    def writer(i):
        for j in range(300):
            store.put((i, j), j)
            store.get((i, j - 1))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store) == 8


def test_finished_films_are_shared_between_sessions_and_capped():
    """README: 8 finished films per server. A film one session puts in the
    store is found by another (sessions run in threads of their own); nine new
    films leave the last 8, the oldest gone."""
    store = finished_films()
    before = list(store._items.items())  # other tests' films, put back below
    tag = uuid.uuid4().hex
    films_made = [(tag, k) for k in range(9)]
    found = {}
    try:
        writer = threading.Thread(target=lambda: [finished_films().put(key, key) for key in films_made])
        writer.start()
        writer.join()
        reader = threading.Thread(target=lambda: found.update((k, finished_films().get(k)) for k in films_made))
        reader.start()
        reader.join()
    finally:
        for key, value in before:
            store.put(key, value)
    assert found[films_made[0]] is None
    assert [found[k] for k in films_made[1:]] == films_made[1:]


def test_teacher_cache_keeps_three_models():
    # A tiny timm ViT keeps this cheap; the cache does not care which model it holds.
    name = "vit_tiny_patch16_224"
    built = [get_teacher(name, "random", False, seed) for seed in (101, 102, 103, 104)]
    assert len({id(t) for t in built}) == 4
    assert get_teacher(name, "random", False, 104) is built[3]  # kept
    assert get_teacher(name, "random", False, 101) is not built[0]  # the oldest was dropped


def test_a_session_keeps_at_most_films_per_session():
    at = new_app()
    small(at, iters=10)
    keys = []
    for iters in (10, 20, 30, 40):
        at.number_input(key="iters").set_value(iters)
        at.run()
        click(at, "Step")
        assert not at.exception
        keys.append(next(k for k in films(at) if k[-1] == iters))
    assert FILMS_PER_SESSION == 3
    assert list(films(at)) == keys[1:]  # the oldest went first
