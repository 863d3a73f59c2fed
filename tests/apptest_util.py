"""Helpers for AppTest-driven page tests: every run goes through app.py, so the
shared sidebar is drawn and read as in `streamlit run app.py`."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def new_app(timeout: float = 240, **sidebar) -> AppTest:
    """A fresh session of the app; `sidebar` sets widgets by key before the first run."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    for key, value in sidebar.items():
        at.session_state[key] = value
    at.run()
    return at


def small_app(iters: int = 30, **sidebar) -> AppTest:
    """A session with fast settings: a 16x16 grid and few iterations."""
    at = new_app(**sidebar)
    small(at, iters)
    return at


def small(at: AppTest, iters: int = 30) -> None:
    """Switch a running session to a 16x16 grid and few iterations, through the widgets."""
    at.sidebar.radio(key="grid").set_value(16)
    at.run()
    at.number_input(key="iters").set_value(iters)
    at.run()
    assert at.session_state["choice"].grid == 16


def click(at: AppTest, label: str) -> None:
    next(b for b in at.button if b.label.endswith(label)).click()
    at.run()


def handles(at: AppTest, page: str = "islands") -> dict:
    """This session's runs of a page: key -> `apm_viz.worker.Handle`."""
    key = f"runs_{page}"
    return dict(at.session_state[key]) if key in at.session_state else {}


def run_to_end(at: AppTest, page: str = "islands", timeout: float = 600) -> None:
    """Wait for the session's live runs (they train in worker processes), then draw the page again."""
    for h in handles(at, page).values():
        if h.live and h.status not in ("paused", "held"):
            assert h.manager.wait(h, timeout), "the run did not finish"
    at.run()


def films(at: AppTest, page: str = "islands") -> dict:
    """This session's films: key -> the film's view (what the page draws)."""
    return {k: h.view for k, h in handles(at, page).items()}
