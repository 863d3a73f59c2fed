"""The app under bad input, failing runs and several sessions (Streamlit AppTest).

Each bad thing shows one line and changes nothing else: the image, teacher and
runs in use stay. (Several sessions at once, on a real server: test_sessions_browser.py.)
"""

import io
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from apptest_util import APP, click, films, handles, new_app, run_to_end, small
from test_reliability_images import BAD, quadrants
from test_reliability_weights import Payload

ROOT = Path(__file__).resolve().parents[1]
ITERS = 10  # the smallest the page allows

# -- seeing which files the process opens -------------------------------------------

_OPENS: dict = {"on": False, "paths": []}


def _audit(event, args):
    if _OPENS["on"] and event == "open" and isinstance(args[0], (str, bytes, Path)):
        _OPENS["paths"].append((str(args[0]), str(args[1])))


sys.addaudithook(_audit)


def _sockets(event, args):
    if _OPENS["on"] and event in ("socket.connect", "socket.getaddrinfo"):
        _OPENS["paths"].append((event, str(args[:2])))


sys.addaudithook(_sockets)


class opened:
    """Record every path the process opens inside the block (all threads)."""

    def __enter__(self):
        _OPENS["paths"].clear()
        _OPENS["on"] = True
        return _OPENS["paths"]

    def __exit__(self, *exc):
        _OPENS["on"] = False


# -- driving the app ----------------------------------------------------------------

def errors(at: AppTest) -> list[str]:
    """Every st.error on screen, sidebar included."""
    return [e.value for e in at.error]


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


# -- no network -------------------------------------------------------------------------

def test_offline_first_page_falls_back_without_touching_the_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = AppTest.from_file(APP, default_timeout=240)
    at.session_state["seed"] = 4242  # a teacher no earlier test has cached: built now
    with opened() as events:
        at.run()
    assert not at.exception
    assert not [e for e in events if e[0].startswith("socket.")]
    teacher = at.session_state["choice"].teacher
    assert teacher.weights.kind == "random" and teacher.weights.detail == "seed 4242, hub unreachable"
    assert any("random init: seed 4242, hub unreachable" in w.value for w in at.sidebar.warning)
    assert any("Random-init teacher" in w.value for w in at.warning)


# -- bad images: one line, the image and the run stay ----------------------------------

def test_bad_uploads_keep_the_image_and_the_run():
    token = uuid.uuid4().hex[:12]  # in every upload's name, to spot any file written under it
    at = new_app()
    at.sidebar.radio(key="image_source").set_value("Upload")
    at.run()
    good = np.kron(quadrants(), np.ones((5, 5, 1), np.uint8))  # 160 x 240
    at.sidebar.file_uploader(key="upload").set_value((f"{token}-good.png", png(good), "image/png"))
    with opened() as paths:
        at.run()
    assert not at.exception
    choice = at.session_state["choice"]
    assert choice.image.name == f"{token}-good.png"
    small(at, ITERS)
    click(at, "Run")
    run_to_end(at)
    (key, film), = films(at).items()
    assert film.done and film.run.status == "done"
    sha, snaps = choice.image.sha256, list(film.run.snapshots)

    allowed = at.sidebar.file_uploader(key="upload").allowed_type
    assert ".svg" not in allowed  # the uploader itself refuses .svg; an SVG renamed .png reaches the app
    with opened() as paths:
        for case, (filename, data) in BAD.items():
            name = f"{token}-{filename}" + ("" if Path(filename).suffix in allowed else ".png")
            at.sidebar.file_uploader(key="upload").set_value((name, data, "application/octet-stream"))
            at.run()
            assert not at.exception, case
            shown = [e for e in errors(at) if name in e]
            assert len(shown) == 1 and "\n" not in shown[0], case
            now = at.session_state["choice"]
            assert now.image.sha256 == sha, case  # the image in use is unchanged
            assert films(at) == {key: film} and film.run.snapshots == snaps, case  # and so is the run
            assert at.select_slider(key="frame_iter").options, case  # still on screen
    # Uploads live in memory: nothing was ever opened under an uploaded file's name.
    assert not [p for p, _ in paths if token in p]

    # The app stays usable: a good upload after the bad ones replaces the image.
    at.sidebar.file_uploader(key="upload").set_value(("again.png", png(good[:, ::-1].copy()), "image/png"))
    at.run()
    assert not at.exception and not errors(at)
    assert at.session_state["choice"].image.sha256 != sha


# -- runs that go wrong ------------------------------------------------------------

def test_divergence_in_the_app_shows_a_message_and_keeps_snapshots():
    from collections import OrderedDict
    from dataclasses import replace

    from apm_viz.jobs import film_job
    from apm_viz.pipeline import encode
    from apm_viz.ttt import recommended
    from ui.runs import manager
    from ui.state import film_key

    at = new_app(seed=41)  # a run of its own, not another test's finished one
    small(at, iters=30)
    choice = at.session_state["choice"]
    key = film_key(choice, 30)
    # The page's own run, with a far too large learning rate: what a bad setting does a few steps in.
    config = replace(recommended(choice.loss, preset=choice.preset, iters=30, seed=41), lr=1e3)
    h = manager().submit(film_job(key, encode(choice.image, choice.teacher, 16), config, seed=41), owner=None)
    at.session_state["runs_islands"] = OrderedDict({key: h})
    run_to_end(at)
    assert not at.exception
    film = h.view
    assert film.run.status == "diverged" and h.status == "done"
    shown = [e for e in errors(at) if "diverged" in e]
    assert len(shown) == 1 and "lower the learning rate" in shown[0]
    kept = film.run.snapshots
    assert kept and film.frames == len(kept)
    assert list(at.select_slider(key="frame_iter").options) == [str(s.iteration) for s in kept]
    assert key not in h.manager.store  # a diverged film is not shared
    # Still usable: scrub the kept frames.
    at.select_slider(key="frame_iter").set_value(kept[0].iteration)
    at.run()
    assert not at.exception and at.select_slider(key="frame_iter").value == kept[0].iteration


def test_pause_keeps_the_run_and_resume_finishes_it():
    at = new_app(seed=42)
    small(at, iters=200)
    click(at, "Run")
    (h,) = handles(at).values()
    assert h.manager.wait(h, 600, until=lambda h: h.view.iteration > 0)
    click(at, "Pause")
    assert h.status == "paused"
    time.sleep(0.5)
    paused_at, kept = h.view.iteration, list(h.view.run.snapshots)
    time.sleep(1.0)
    at.run()
    assert h.view.iteration == paused_at and h.view.run.snapshots == kept  # nothing moves while paused
    click(at, "Run")
    run_to_end(at)
    assert h.status == "done" and h.view.run.status == "done" and h.view.run.snapshots[: len(kept)] == kept


def test_a_run_too_large_for_memory_is_refused_in_the_app(monkeypatch):
    at = new_app()
    small(at, ITERS)
    click(at, "Run")
    run_to_end(at)
    before = films(at)
    monkeypatch.setenv("APM_VIZ_MEMORY_LIMIT", "200M")
    at.sidebar.selectbox(key="preset").set_value("paper")
    at.run()
    for label in ("Run", "Step"):
        at.run()  # the refusal ends its script run early; any interaction draws the page again
        click(at, label)
        assert not at.exception, label
        shown = [e for e in errors(at) if "this run needs about" in e]
        assert len(shown) == 1 and "preset paper" in shown[0] and "limit is 200 MB" in shown[0], label
        assert films(at) == before and not [h for h in handles(at).values() if h.live]
    # Back to a size that fits: the earlier run is there again.
    at.sidebar.selectbox(key="preset").set_value("laptop")
    at.run()
    assert not at.exception and at.select_slider(key="frame_iter").options


# -- teacher weights ------------------------------------------------------------------

@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "a-corrupt.pth").write_bytes(b"\x00garbage" * 100)
    from apm_viz.teachers import create_teacher

    torch.save(create_teacher("dinov2-base", weights="random", depth=1).model.state_dict(), folder / "b-base.pth")
    torch.save(create_teacher("dinov2-small", weights="random", depth=1).model.state_dict(),
               folder / "c-one-block.pth")
    torch.save({"model": {"cls_token": Payload(tmp_path / "ran")}}, folder / "d-hostile.pth")
    (tmp_path / "outside.pth").write_bytes(b"x")
    monkeypatch.setenv("APM_VIZ_WEIGHTS_DIR", str(folder))
    return folder


def test_wrong_weights_keep_the_previous_teacher(weights_dir):
    at = new_app()
    teacher = at.session_state["choice"].teacher
    assert teacher.weights.kind == "random"
    at.sidebar.radio(key="weights_mode").set_value("Local file")
    with opened() as first:  # the first file in the list is tried at once
        at.run()
    first = list(first)
    files = at.sidebar.selectbox(key="weights_file").options
    assert files == ["a-corrupt.pth", "b-base.pth", "c-one-block.pth", "d-hostile.pth"]
    says = {"a-corrupt.pth": "not a readable weights file", "b-base.pth": "wrong shape",
            "c-one-block.pth": "missing", "d-hostile.pth": "not a readable weights file"}
    for name in files:
        at.sidebar.selectbox(key="weights_file").set_value(name)
        with opened() as paths:
            at.run()
        assert not at.exception, name
        shown = [e for e in errors(at) if e.startswith(name)]
        assert len(shown) == 1 and says[name] in shown[0] and "keeping the previous teacher" in shown[0], name
        assert at.session_state["choice"].teacher is teacher, name
        assert any(p.endswith(name) for p, _ in paths + (first if name == files[0] else [])), name  # tried
        # Another rerun with the same bad file shows the message again without reading it again.
        with opened() as paths:
            at.run()
        assert [e for e in errors(at) if e.startswith(name)] == shown, name
        assert not [p for p, _ in paths if p.endswith(name)], name
    assert not (weights_dir.parent / "ran").exists()
    # The previous teacher's source is still stated on screen.
    assert any("random init" in w.value for w in at.sidebar.warning)


@pytest.mark.parametrize("typed, says", [
    ("../outside.pth", "weights must come from the weights folder"),
    ("{outside}", "weights must come from the weights folder"),
    ("sub/../../outside.pth", "weights must come from the weights folder"),
    ("a\0b.pth", "not a usable file name"),
    ("x" * 300 + ".pth", "not a usable file name"),
])
def test_typed_weights_path_is_confined_to_the_folder(tmp_path, monkeypatch, typed, says):
    folder = tmp_path / "empty-weights"
    folder.mkdir()
    (tmp_path / "outside.pth").write_bytes(b"x")
    monkeypatch.setenv("APM_VIZ_WEIGHTS_DIR", str(folder))
    at = new_app()
    teacher = at.session_state["choice"].teacher
    at.sidebar.radio(key="weights_mode").set_value("Local file")
    at.run()
    at.sidebar.text_input(key="weights_typed").set_value(typed.format(outside=tmp_path / "outside.pth"))
    at.run()
    assert not at.exception
    assert len([e for e in errors(at) if says in e]) == 1
    assert at.session_state["choice"].teacher is teacher


def test_listed_link_out_of_the_folder_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    folder.mkdir()
    (tmp_path / "outside.pth").write_bytes(b"x")
    (folder / "link-out.pth").symlink_to(tmp_path / "outside.pth")
    monkeypatch.setenv("APM_VIZ_WEIGHTS_DIR", str(folder))
    at = new_app()
    teacher = at.session_state["choice"].teacher
    at.sidebar.radio(key="weights_mode").set_value("Local file")
    at.run()
    assert at.sidebar.selectbox(key="weights_file").value == "link-out.pth"
    assert not at.exception
    assert any("weights must come from the weights folder" in e for e in errors(at))
    assert at.session_state["choice"].teacher is teacher
