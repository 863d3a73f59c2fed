"""Per-session state: the sidebar's choice and this session's islands films.

Each browser session has its own `st.session_state`, so runs never mix;
finished films are also put in a process-wide store keyed by everything that
decides them, so the same image with the same settings is not computed twice.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Optional

import streamlit as st

from apm_viz.errors import ApmVizError
from apm_viz.film import IslandsFilm
from apm_viz.ttt import TTTConfig, recommended

from .cache import finished_films
from .sidebar import Choice, teacher_output

#: Films kept per session (older ones are dropped; finished ones stay shared).
FILMS_PER_SESSION = 3


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


def get_film(choice: Choice, iters: int, create: bool = False) -> Optional[IslandsFilm]:
    """This session's film for the choice, a finished shared one, or (create) a new one."""
    films: OrderedDict = st.session_state.setdefault("films", OrderedDict())
    key = film_key(choice, iters)
    film = films.get(key)
    if film is None:
        film = finished_films().get(key)
        if film is None and create:
            config = recommended(choice.loss, preset=choice.preset, iters=iters, seed=choice.seed)
            film = start_film(choice, config)
        if film is not None:
            films[key] = film
            while len(films) > FILMS_PER_SESSION:
                films.popitem(last=False)
    return film


def start_film(choice: Choice, config, **film_kwargs) -> IslandsFilm:
    """A new film of the choice under `config`. When the engine refuses the run
    (too large for memory, say) its one-line reason is shown and this script run
    ends there, so no caller goes on with a film that does not exist."""
    try:
        return IslandsFilm(teacher_output(choice), config, seed=choice.seed, **film_kwargs)
    except ApmVizError as err:
        st.error(str(err), icon="🛑")
        st.stop()


def drop_film(choice: Choice, iters: int) -> None:
    st.session_state.setdefault("films", OrderedDict()).pop(film_key(choice, iters), None)


def publish_if_done(choice: Choice, iters: int, film: IslandsFilm) -> None:
    if film.done and film.run.status == "done":
        finished_films().put(film_key(choice, iters), film)


def latest_film(choice: Choice) -> Optional[IslandsFilm]:
    """This session's most recent film for the choice, at any number of iterations
    (other pages cannot read the Islands page's iterations widget once it is gone)."""
    films = st.session_state.get("films") or {}
    for key in reversed(list(films)):
        if key[:-1] == choice.key:
            return films[key]
    return None


def get_config_film(choice: Choice, config: TTTConfig, create: bool = False) -> Optional[IslandsFilm]:
    """This session's film for the choice's image, teacher and grid under an explicit
    TTT config (its loss, settings and iterations), without live projections:
    for pages that compare fields rather than draw islands."""
    films: OrderedDict = st.session_state.setdefault("config_films", OrderedDict())
    key = (choice.image.sha256, choice.teacher_key, choice.grid, config)
    film = films.get(key)
    if film is None and create:
        film = start_film(choice, config, live={})
        films[key] = film
        while len(films) > FILMS_PER_SESSION:
            films.popitem(last=False)
    return film


def drop_config_film(choice: Choice, config: TTTConfig) -> None:
    st.session_state.setdefault("config_films", OrderedDict()).pop(
        (choice.image.sha256, choice.teacher_key, choice.grid, config), None)
