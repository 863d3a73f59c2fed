"""The Islands page under Streamlit's AppTest: run, scrub, re-count, Play, sessions.

The run trains in the app's worker processes; these tests count the work the
page itself does (projections, colours, island counts, figures) while a
person scrubs, plays or moves τ.
"""

import base64
import json
import time
from collections import Counter

import numpy as np
import pytest

from apptest_util import click, films, handles, new_app, run_to_end, small_app

#: The figure builders the page calls, and their modules in apm_viz.figures.
FIGURES = ("image_figure", "island_map_figure", "scatter_figure", "curve_figure")
FIGURE_MODULES = ("maps", "maps", "projections", "curves")


@pytest.fixture(scope="module")
def finished():
    at = small_app()
    click(at, "Run")
    run_to_end(at)
    return at


def plotly_figures(at) -> list[dict]:
    """Every plotly figure on the page, as the JSON the browser receives."""
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def values(array) -> np.ndarray:
    """A plotly data array: a list, or plotly's typed form {"dtype", "bdata": base64}."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array)


def scatter_titles(at) -> list[str]:
    titles = [f["layout"].get("title", {}).get("text", "") for f in plotly_figures(at)]
    return [t for t in titles if t.startswith(("2-D", "3-D"))]


@pytest.fixture
def work(monkeypatch):
    """Counts every projection, colouring, island count and figure built in this process."""
    import importlib

    from apm_viz import islands

    calls = Counter()

    def counted(module, name):
        real = getattr(module, name)

        def wrapper(*a, **k):
            calls[name] += 1
            return real(*a, **k)

        monkeypatch.setattr(module, name, wrapper)

    for name in ("project", "colorize", "count_islands"):
        counted(islands, name)
    for name, module in zip(FIGURES, FIGURE_MODULES):
        counted(importlib.import_module(f"apm_viz.figures.{module}"), name)
    return calls


def test_first_page_shows_sample_and_weight_source():
    at = new_app()
    assert not at.exception
    texts = " ".join(w.value for w in at.warning) + " ".join(s.value for s in at.sidebar.warning)
    assert "random init" in texts and "Random-init teacher" in texts
    assert at.title[0].value == "Islands of agreement"
    assert at.button[0].label.endswith("Run") and not at.button[0].disabled


def test_the_page_names_its_teacher_patch_pixels_and_weights(finished):
    # The sidebar's defaults are a random DINOv2-small (patch 14); the fixture chose a 16x16 grid: 16 * 14 px.
    line = next(c.value for c in finished.caption if c.value.startswith("Teacher:"))
    assert line.startswith("Teacher: dinov2-small (DINOv2, patch 14, 224 px for 16x16)")
    assert "weights: random init" in line


def test_run_finishes_with_all_frames(finished):
    at = finished
    assert not at.exception
    (film,) = films(at).values()
    assert film.done and film.run.status == "done"
    assert film.run.iterations[-1] == 30
    assert film.frames == len(film.run.snapshots) == len(film.run.config.snapshot_iterations())
    slider = at.select_slider(key="frame_iter")
    assert list(slider.options) == [str(i) for i in film.run.iterations]
    assert slider.value == 30
    assert not hasattr(film, "trainer")  # the page holds what it draws, not the model being trained


def test_scrubbing_computes_nothing_and_builds_each_figure_once(finished, work):
    at = finished
    (film,) = films(at).values()
    before = (film.iteration, [len(c) for c in film.coords.values()], len(film.run.losses))
    for it in (0, 5, 18):
        at.select_slider(key="frame_iter").set_value(it)
        at.run()
        assert not at.exception
    assert (work["project"], work["colorize"], work["count_islands"]) == (0, 0, 0)
    # New frames: their map, 2-D, 3-D, the loss curve and the count curve (each marks the iteration).
    assert work["island_map_figure"] == 3 and work["scatter_figure"] == 6 and work["curve_figure"] == 6
    assert work["image_figure"] == 3  # inside each island map; the input itself was built before
    built = sum(work[f] for f in FIGURES)
    for it in (0, 5, 18):  # frames seen before: nothing is built again
        at.select_slider(key="frame_iter").set_value(it)
        at.run()
    assert sum(work[f] for f in FIGURES) == built and work["project"] == 0
    after = (film.iteration, [len(c) for c in film.coords.values()], len(film.run.losses))
    assert before == after
    assert at.select_slider(key="frame_iter").value == 18


def test_tau_recounts_each_frame_once_and_reprojects_nothing(finished, work):
    at = finished
    (film,) = films(at).values()
    frames_before = [c.copy() for c in film.coords["3d"]]
    n = film.frames
    at.slider(key="tau").set_value(-1.0)
    at.run()
    assert work["count_islands"] == n + 1  # each frame and the teacher, once
    at.slider(key="tau").set_value(0.99)
    at.run()
    assert work["count_islands"] == 2 * (n + 1)
    at.slider(key="tau").set_value(-1.0)
    at.run()
    assert work["count_islands"] == 2 * (n + 1)  # counted before: read
    assert work["project"] == 0 and work["colorize"] == 0
    low, high = film.island_counts(-1.0, 4), film.island_counts(0.99, 4)
    assert all(c == 1 for _, c in low)  # everything agrees at tau = -1
    assert low != high
    for a, b in zip(frames_before, film.coords["3d"]):
        np.testing.assert_array_equal(a, b)
    at.slider(key="tau").set_value(0.8)
    at.run()


def test_pca_projection_option(finished, work):
    at = finished
    at.radio(key="projection").set_value("PCA")
    at.run()
    assert not at.exception
    assert work["project"] == 3  # PCA of every frame in 3-D and 2-D, and of the teacher's grid, once each
    assert scatter_titles(at) == ["2-D PCA", "3-D PCA"]
    at.select_slider(key="frame_iter").set_value(5)
    at.run()
    assert work["project"] == 3
    at.radio(key="projection").set_value("aligned t-SNE")
    at.run()
    assert not at.exception
    # Back to the film's own aligned t-SNE: its 2-D coordinates of the frame shown, nothing recomputed.
    assert scatter_titles(at) == ["2-D t-SNE", "3-D t-SNE"]
    assert work["project"] == 3
    (film,) = films(at).values()
    k = film.run.iterations.index(int(at.select_slider(key="frame_iter").value))
    shown = next(f for f in plotly_figures(at) if f["layout"]["title"]["text"] == "2-D t-SNE")["data"][0]
    np.testing.assert_allclose(np.c_[values(shown["x"]), values(shown["y"])], film.live_projection("2d").coords[k],
                               rtol=1e-6)


def test_play_steps_through_frames_without_computing(finished, work):
    at = finished
    (film,) = films(at).values()
    click(at, "Play")
    assert at.session_state["playing"]
    shown = [at.session_state["frame_iter"]]
    for _ in range(len(film.run.snapshots)):  # under AppTest a timed fragment ticks once per run
        at.run()
        shown.append(at.session_state["frame_iter"])
    n = len(film.run.iterations)
    assert shown[:n] == film.run.iterations  # every frame in order
    assert shown[n] == film.run.iterations[0]  # then round again
    assert (work["project"], work["colorize"], work["count_islands"]) == (0, 0, 0)
    click(at, "Stop")
    assert not at.session_state["playing"]


def test_upload_mode_without_a_file_asks_for_one():
    at = new_app(image_source="Upload")
    assert not at.exception
    assert "upload an image" in at.info[0].value


def test_step_pause_and_reset():
    at = small_app(iters=1000)  # long enough not to finish between two clicks
    click(at, "Step")
    (h,) = handles(at).values()
    assert h.manager.wait(h, 600, until=lambda h: h.status == "held")
    assert h.view.iteration == 10 and h.view.run.iterations == [0, 1, 2, 3, 5, 8]
    click(at, "Run")
    assert h.status == "running"
    assert h.manager.wait(h, 600, until=lambda h: h.view.iteration > 10)
    click(at, "Pause")
    assert h.status == "paused"
    it = h.view.iteration
    time.sleep(1.0)
    at.run()
    assert h.view.iteration == it  # paused: nothing advances
    assert any(c.value == "Paused" for c in at.caption)
    click(at, "Reset")
    assert films(at) == {}
    assert h.manager.wait(h, 600) and h.status == "cancelled"  # nobody holds it any more


def test_changing_settings_mid_run_stops_the_run_and_keeps_the_page_usable():
    at = small_app(iters=2000)
    click(at, "Run")
    (h,) = handles(at).values()
    at.number_input(key="iters").set_value(20)  # settings changed while it trains
    at.run()
    assert not at.exception
    assert h.manager.wait(h, 600) and h.status == "cancelled"
    assert not [x for x in handles(at).values() if x.live]  # nothing keeps polling
    click(at, "Run")
    run_to_end(at)
    assert [v.run.status for k, v in films(at).items() if k[-1] == 20] == ["done"]


def test_a_stale_selection_from_a_larger_grid_is_ignored(finished):
    at = finished
    # What a 32x32 film's 2-D plot left behind (index 1000) while this film is 16x16: the
    # selection is kept per grid, and indices past the grid are dropped.
    stale = {"selection": {"points": [{"point_index": 1000}]}}
    at.session_state["scatter2d"] = stale
    at.session_state["scatter2d_32x32"] = stale
    at.run()
    assert not at.exception
    assert not any("locations selected" in c.value for c in at.caption)


def test_sessions_are_separate_and_finished_results_are_reused(finished):
    other = small_app(sample="coffee.jpg")
    click(other, "Run")
    run_to_end(other)
    mine, theirs = films(finished), films(other)
    assert set(mine).isdisjoint(theirs)
    (a,) = mine.values()
    (b,) = theirs.values()
    assert a.teacher.image.shape == b.teacher.image.shape and not np.array_equal(a.teacher.image, b.teacher.image)
    # A third session with the first one's settings gets the finished film without training.
    third = small_app()
    (c,) = films(third).values()
    assert c is a
