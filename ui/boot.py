"""The first page of a fresh server, before the engine has loaded.

The first script run of a server would otherwise import torch and timm and
build the default teacher before it could draw anything (about 17 s on this
machine kind when busy). Instead it draws a first look at once (the page's
title, the default sample and an enabled Run) while one background thread of
the server imports the engine and builds the default teacher, then draws the
full page in the same script run. A Run pressed on the first look is kept
(`RUN_ON_LOAD` in the session's state) and the Islands page starts that run
as soon as it draws.

This module imports nothing heavy: only the standard library and streamlit.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Optional

import streamlit as st

ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEFAULT_SAMPLE = "chelsea.jpg"
#: Session-state key: Run was pressed before the engine had loaded.
RUN_ON_LOAD = "run_on_load"
#: Seconds between updates of the first look's elapsed time.
TICK_SECONDS = 0.5

_thread: Optional[threading.Thread] = None
_lock = threading.Lock()
_error: Optional[str] = None
_started_at = 0.0


def _warm_up() -> None:
    """Import what the pages import, build the sidebar's default teacher and its
    view of the default sample at the default grid (both cached: the first Run
    finds them), and draw a frame's figures once off screen."""
    global _error
    try:
        import apm_viz.jobs  # noqa: F401  (torch, the film, the trainer)
        import ui.downloads  # noqa: F401  (the export: matplotlib, plotly)
        import ui.islands_view  # noqa: F401
        from apm_viz.images import load_image
        from ui.cache import get_teacher, get_teacher_output
        from ui.sidebar import DEFAULT_GRID, DEFAULT_TEACHER, default_teacher_key

        key = default_teacher_key(DEFAULT_TEACHER)
        teacher = get_teacher(*key)
        image = load_image(ASSETS / DEFAULT_SAMPLE)
        out = get_teacher_output(image.sha256, key, DEFAULT_GRID, image, teacher)
        # A first frame's readings and figures, once: its first draw took 2.7 s, 1.9 s of it
        # importing scikit-learn (the teacher's PCA colours) on the spot.
        ui.islands_view.warm_up(out.grid)
    except Exception as err:  # the full page shows the error where it happens again
        _error = f"{type(err).__name__}: {err}"


def start() -> None:
    """Start loading the engine in the background (once per server process)."""
    global _thread, _started_at
    with _lock:
        if _thread is None:
            _started_at = time.perf_counter()
            _thread = threading.Thread(target=_warm_up, daemon=True, name="apm-viz-warm-up")
            _thread.start()


def ready() -> bool:
    return _thread is not None and not _thread.is_alive()


def first_look(title: str, islands: bool) -> None:
    """What the page shows while the engine loads; returns once it has loaded.

    The elements are sent to the browser as they are drawn, so the image and
    Run are on screen while this script run waits. A click on Run reruns the
    script at the next tick; its callback keeps the wish for the full page."""
    wanted = st.session_state.get(RUN_ON_LOAD)

    def say(note) -> None:
        note.info(("Run pressed: it starts as soon as the engine has loaded. " if wanted else "")
                  + "Loading the engine (torch, timm) and building the teacher, once per server: "
                  f"{time.perf_counter() - _started_at:.0f} s", icon="⏳")

    holder = st.empty()
    with holder.container():
        st.title(title)
        note = st.empty()
        say(note)  # before the image: whoever sees the image sees why the sidebar is not there yet
        if islands:
            st.button("Run", icon=":material/play_arrow:", type="primary", key="boot_run",
                      on_click=lambda: st.session_state.update({RUN_ON_LOAD: True}))
            st.image(str(ASSETS / DEFAULT_SAMPLE), caption=DEFAULT_SAMPLE, width=320)
    while not ready():
        time.sleep(TICK_SECONDS)
        say(note)
    holder.empty()
