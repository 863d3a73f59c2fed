"""Helpers for AppTest-driven page tests."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def new_app(**sidebar) -> AppTest:
    """A fresh session of the app, its sidebar widgets set by key before the first run.

    Under st.navigation, AppTest's element tree loses the sidebar after the
    first run (the real app keeps it; the browser test drives it there), so
    sidebar values are given as initial session state, which widgets read.
    """
    at = AppTest.from_file(APP, default_timeout=180)
    for key, value in sidebar.items():
        at.session_state[key] = value
    at.run()
    return at


def small_app(iters: int = 30, **sidebar) -> AppTest:
    """A session with fast settings: a 16x16 grid and few iterations."""
    at = new_app(grid=16, **sidebar)
    at.number_input(key="iters").set_value(iters)
    at.run()
    return at


def click(at: AppTest, label: str) -> None:
    next(b for b in at.button if b.label.endswith(label)).click()
    at.run()


def run_to_end(at: AppTest, max_reruns: int = 200) -> None:
    """Fragments with run_every do not tick under AppTest: rerun until the film is done."""
    for _ in range(max_reruns):
        if not at.session_state["running"]:
            return
        at.run()
    raise AssertionError("the run did not finish")


def films(at: AppTest) -> dict:
    return dict(at.session_state["films"]) if "films" in at.session_state else {}
