"""The Latent interpolation page under Streamlit's AppTest: fit, walk, scrub, cancel."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from apptest_util import handles, run_to_end

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGE = "views/3_interpolation.py"


def open_page() -> AppTest:
    """A fresh session on the page, offline, at a 16x16 grid."""
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["grid"] = 16
    at.run()
    at.switch_page(PAGE)
    at.run()
    return at


def fit(at: AppTest, iters: int) -> None:
    """Press Fit; the fit trains in a worker process: wait for it, then draw the page again."""
    at.number_input(key="interp_iters").set_value(iters)
    at.run()
    at.button(key="interp_fit_button").click()
    at.run()
    run_to_end(at, "interp")


def the_fit(at: AppTest):
    """This session's memory fit (its view: what the page reads)."""
    (h,) = handles(at, "interp").values()
    return h.view


def image_captions(at: AppTest) -> list[str]:
    return [c for im in at.get("image") for c in im.captions]


def texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


@pytest.fixture(scope="module")
def fitted():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        at = open_page()
        fit(at, 20)
        yield at


def test_page_renders_before_any_fit():
    at = open_page()
    assert not at.exception, at.exception
    assert at.title[0].value == "Latent interpolation"
    assert at.selectbox(key="interp_a").value == "chelsea.jpg"
    assert at.selectbox(key="interp_b").value == "coffee.jpg"
    assert "Press **Fit**" in texts(at.caption)
    assert not at.get("download_button")
    # The same image twice is refused before fitting.
    at.selectbox(key="interp_b").set_value("chelsea.jpg")
    at.run()
    assert "two different images" in texts(at.warning)
    assert at.button(key="interp_fit_button").disabled


def test_fit_runs_to_the_end_and_shows_the_walk(fitted):
    at = fitted
    assert not at.exception, at.exception
    trainer = the_fit(at)
    assert trainer.run.status == "done" and trainer.iteration == 20
    assert trainer.names == ["chelsea.jpg", "coffee.jpg"]
    labels = [m.label for m in at.metric]
    assert "Smoothness (RGB)" in labels and "End A: RGB error" in labels
    assert 0 < float(at.metric[0].value) <= 1
    slider = at.slider(key="interp_pos")
    assert (slider.min, slider.max, slider.value) == (0, 8, 0)  # n = 8, both ends
    assert len(at.get("download_button")) == 3  # the export expander: strip, GIF, MP4
    assert "Islands along the walk" in texts(at.subheader)


def test_slider_moves_along_the_walk_without_refitting(fitted):
    at = fitted
    trainer = the_fit(at)
    losses = len(trainer.run.losses)
    for k in (3, 8):
        at.slider(key="interp_pos").set_value(k)
        at.run()
        assert not at.exception
        assert at.slider(key="interp_pos").value == k
        captions = image_captions(at)
        assert f"i = {k}/8" + (" (B)" if k == 8 else "") in captions  # the player's frame
        assert any(c.startswith(f"islands at i = {k}/8") for c in captions)
    assert len(trainer.run.losses) == losses
    assert the_fit(at) is trainer


def test_walk_options_reuse_the_memory(fitted):
    at = fitted
    trainer = the_fit(at)
    at.slider(key="interp_pos").set_value(0)
    at.slider(key="interp_n").set_value(4)
    at.number_input(key="interp_extra").set_value(1)
    at.number_input(key="interp_dreams").set_value(2)
    at.run()
    assert not at.exception, at.exception
    assert the_fit(at) is trainer
    assert at.slider(key="interp_pos").max == 6  # i = -1 .. 5
    walk = at.session_state["interp_walks"]["walks"][(4, True, True, 1, 1)]["walk"]
    assert walk.steps.tolist() == [-1, 0, 1, 2, 3, 4, 5]
    assert "Dreams" in texts(at.subheader)
    assert {"dream 1", "dream 2"} <= set(image_captions(at))
    assert "i = -1/4 (extrapolated)" in image_captions(at)
    at.checkbox(key="interp_start").uncheck()
    at.run()
    assert at.slider(key="interp_pos").max == 5


def test_cancel_keeps_the_memory():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        at = open_page()
        at.number_input(key="interp_iters").set_value(5000)
        at.run()
        at.button(key="interp_fit_button").click()
        at.run()
        (h,) = handles(at, "interp").values()
        assert h.live
        assert h.manager.wait(h, 600, until=lambda h: h.view.iteration > 0)
        at.button(key="interp_cancel").click()
        at.run()
        assert h.manager.wait(h, 600) and h.status == "cancelled"
        at.run()
        assert not at.exception, at.exception
        trainer = the_fit(at)
        assert trainer.run.status == "cancelled" and 0 < trainer.iteration < 5000
        assert "cancelled by the user" in texts(at.info)
        assert at.slider(key="interp_pos").max == 8
