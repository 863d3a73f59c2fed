"""The Islands page under Streamlit's AppTest: run, scrub, re-count, sessions."""

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from apptest_util import click, films, new_app, run_to_end, small_app


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


def test_first_page_shows_sample_and_weight_source():
    at = new_app()
    assert not at.exception
    texts = " ".join(w.value for w in at.warning) + " ".join(s.value for s in at.sidebar.warning)
    assert "random init" in texts and "Random-init teacher" in texts
    assert at.title[0].value == "Islands of agreement"


def test_run_finishes_with_all_frames(finished):
    at = finished
    assert not at.exception
    (film,) = films(at).values()
    assert film.done and film.run.status == "done"
    assert film.run.iterations[-1] == 30
    assert film.frames == len(film.run.snapshots)
    slider = at.select_slider(key="frame_iter")
    assert list(slider.options) == [str(i) for i in film.run.iterations]
    assert slider.value == 30


def test_scrubbing_reads_only(finished):
    at = finished
    (film,) = films(at).values()
    before = (film.trainer.iteration, [len(p.coords) for p in film.live.values()], len(film.run.losses))
    for it in (0, 5, 18):
        at.select_slider(key="frame_iter").set_value(it)
        at.run()
        assert not at.exception
    after = (film.trainer.iteration, [len(p.coords) for p in film.live.values()], len(film.run.losses))
    assert before == after
    assert at.select_slider(key="frame_iter").value == 18


def test_tau_recounts_without_recomputing(finished):
    at = finished
    (film,) = films(at).values()
    frames_before = [c.copy() for c in film.live["3d"].coords]
    counts = {}
    for tau in (-1.0, 0.99):
        at.slider(key="tau").set_value(tau)
        at.run()
        counts[tau] = film.island_counts(tau, 4)
    assert counts[-1.0] != counts[0.99]
    assert all(n == 1 for _, n in counts[-1.0])  # everything agrees at tau = -1
    for a, b in zip(frames_before, film.live["3d"].coords):
        np.testing.assert_array_equal(a, b)


def test_pca_projection_option(finished):
    at = finished
    at.radio(key="projection").set_value("PCA")
    at.run()
    assert not at.exception
    (film,) = films(at).values()
    assert any(cfg.method == "pca" for cfg in film.extra)
    assert scatter_titles(at) == ["2-D PCA", "3-D PCA"]
    at.radio(key="projection").set_value("aligned t-SNE")
    at.run()
    assert not at.exception
    # Back to the film's own aligned t-SNE: its 2-D coordinates of the frame shown, nothing recomputed.
    assert scatter_titles(at) == ["2-D aligned t-SNE", "3-D aligned t-SNE"]
    k = film.run.iterations.index(int(at.select_slider(key="frame_iter").value))
    shown = next(f for f in plotly_figures(at) if f["layout"]["title"]["text"] == "2-D aligned t-SNE")["data"][0]
    np.testing.assert_allclose(np.c_[values(shown["x"]), values(shown["y"])], film.live["2d"].coords[k], rtol=1e-6)


def test_upload_mode_without_a_file_asks_for_one():
    at = new_app(image_source="Upload")
    assert not at.exception
    assert "upload an image" in at.info[0].value


def test_pause_and_step():
    at = small_app(iters=1000)  # long enough not to finish between two clicks
    click(at, "Step")
    (film,) = films(at).values()
    assert film.trainer.iteration == 10 and not at.session_state["running"]
    click(at, "Run")
    click(at, "Pause")
    it = film.trainer.iteration
    at.run()
    assert film.trainer.iteration == it  # paused: nothing advances
    click(at, "Reset")
    assert films(at) == {}


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
