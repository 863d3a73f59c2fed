"""Per-session state: the sidebar's choice, and what decides an islands film.

Each browser session has its own `st.session_state`; its runs live in the
server's run manager (`ui.runs`), finished ones shared by every session
under a key made of everything that decides them.
"""

from __future__ import annotations

from typing import Optional

import streamlit as st

from apm_viz.film import FilmFrames

from . import runs
from .sidebar import Choice


def current_choice() -> Optional[Choice]:
    return st.session_state.get("choice")


def require_choice() -> Choice:
    """The sidebar's choice; until there is one (no image yet) the page says what to do and stops."""
    choice = current_choice()
    if choice is None:
        st.info("Pick a sample or upload an image in the sidebar.")
        st.stop()
    return choice


def film_key(choice: Choice, iters: int) -> tuple:
    return choice.key + (iters,)


def islands_film(choice: Choice, iters: Optional[int] = None) -> Optional[FilmFrames]:
    """The Islands page's film of this choice: at `iters` iterations if this session
    or the store has one, else this session's most recent at any number of
    iterations (other pages cannot read the Islands page's iterations widget)."""
    if iters is not None:
        h = runs.current_view_only("islands", film_key(choice, iters))
        if h is not None:
            return h.view
    h = runs.latest("islands", lambda k: k[:-1] == choice.key)
    return None if h is None else h.view
