"""The server's run manager and this session's runs (Streamlit glue over
`apm_viz.worker`).

One `RunManager` per server process (`st.cache_resource`), with its worker
processes started when the first page loads, so the first Run finds them warm.
A session keeps its runs per page ("islands", "tva", "interp") in
`st.session_state`, keyed by the settings that decide them. When the settings
change, the page's other runs are released (a live one that no other session
holds is cancelled; what it computed stays readable in this session); when a
session closes, a watcher releases its runs.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from contextlib import nullcontext
from typing import Callable, Hashable, Optional

import streamlit as st

from apm_viz.errors import ApmVizError
from apm_viz.worker import CANCELLED, DONE, FAILED, LIVE, Handle, RunManager

#: Runs (any state) a session keeps per page; older ones are dropped.
RUNS_PER_PAGE = 3
#: Seconds between checks for closed sessions; a session must be gone twice in a row.
REAP_SECONDS = 5.0
#: Seconds between progress polls of a live run.
POLL_SECONDS = 0.25


_MANAGER: Optional[RunManager] = None
_MANAGER_LOCK = threading.Lock()


def manager() -> RunManager:
    """The one run manager of this server process; its worker processes start now.

    app.py asks for it after the first page is drawn, so the workers' start
    (each imports torch) does not hold back the first page."""
    global _MANAGER
    with _MANAGER_LOCK:
        if _MANAGER is None:
            _MANAGER = RunManager()
            threading.Thread(target=_watch_sessions, args=(_MANAGER,), daemon=True,
                             name="apm-viz-session-watch").start()
        return _MANAGER


def started() -> Optional[RunManager]:
    """The run manager if it exists yet (before it does, no run exists anywhere)."""
    return _MANAGER


def _watch_sessions(m: RunManager) -> None:
    from streamlit.runtime import Runtime

    gone_once: set = set()
    while True:
        time.sleep(REAP_SECONDS)
        if not Runtime.exists():
            continue
        runtime = Runtime.instance()
        try:
            active = runtime.is_active_session
            gone = {o for h in m.handles() for o in h.owners if o is not None and not active(o)}
        except Exception:  # the runtime is stopping
            continue
        m.reap(lambda o: o not in (gone & gone_once))
        gone_once = gone


def session_id() -> Optional[str]:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else None


def _runs(page: str) -> OrderedDict:
    return st.session_state.setdefault(f"runs_{page}", OrderedDict())


def current(page: str, key: Hashable) -> Optional[Handle]:
    """This session's run of `page` for `key` (or a finished one another session
    made); the page's live runs under other keys are released."""
    m = started()
    if m is None:
        return None
    me = session_id()
    for k, h in list(_runs(page).items()):
        if k != key and h.live:
            m.release(h, me)
    return current_view_only(page, key)


def current_view_only(page: str, key: Hashable) -> Optional[Handle]:
    """Like `current`, for a page that reads another page's runs: releases nothing."""
    runs = _runs(page)
    m = started()
    if m is None:
        return None
    h = runs.get(key)
    if h is None or (h.status in (CANCELLED, FAILED) and m.finished(key) is not None):
        view = m.finished(key)
        if view is not None:
            h = Handle(0, key, None, view, m, status=DONE)
            _keep(runs, key, h)
    return h


def start(page: str, key: Hashable, make_job: Callable[[], object], run: bool = True) -> Optional[Handle]:
    """Submit this session's run of `page` for `key` (run=False: held until a Step).
    A refused run (too large, say) shows its one-line reason and ends this script run."""
    try:
        h = manager().submit(make_job(), owner=session_id(), start=run)
    except ApmVizError as err:
        st.error(str(err), icon="🛑")
        st.stop()
    _keep(_runs(page), key, h)
    return h


def drop(page: str, key: Hashable) -> None:
    """Forget this session's run for `key` (a live one is released)."""
    h = _runs(page).pop(key, None)
    if h is not None and h.live:
        manager().release(h, session_id())


def latest(page: str, where: Callable[[Hashable], bool] = lambda k: True) -> Optional[Handle]:
    """This session's most recent run of `page` whose key passes `where`."""
    for k in reversed(list(_runs(page))):
        if where(k):
            return _runs(page)[k]
    return None


def _keep(runs: OrderedDict, key: Hashable, h: Handle) -> None:
    runs[key] = h
    runs.move_to_end(key)
    while len(runs) > RUNS_PER_PAGE:
        _, old = runs.popitem(last=False)
        if old.live:
            manager().release(old, session_id())


def status_line(h: Handle) -> Optional[str]:
    """What the run is doing, when that is not plain training."""
    if h.status == "queued":
        place = h.place
        if place == 1 and not h.manager.ready_slots():
            return "Queued: the worker processes are starting (each loads torch once)"
        return f"Queued: {place - 1} run(s) before this one" if place else "Queued"
    if h.status == "paused":
        return "Paused"
    if h.status == "held":
        return "Stepped: press Run to go on"
    if h.status == FAILED:
        return h.message
    return None


def is_live(h: Optional[Handle]) -> bool:
    return h is not None and h.status in LIVE


def progress(h: Handle, line: Callable[[Handle], None], drawn: Callable[[Handle], Hashable],
             key: Optional[str] = None) -> None:
    """A run's progress line that polls: `line(h)` in a fragment drawn again every
    POLL_SECONDS while the run is live. Once `drawn(h)` (what the page's results
    depend on: a new state, a new frame) is no longer what it was when this
    script run drew the page, the whole page is drawn again. `key` names the
    line's container."""
    seen = drawn(h)

    @st.fragment(run_every=POLL_SECONDS if is_live(h) else None)
    def poll():
        with st.container(key=key) if key else nullcontext():
            line(h)
        if drawn(h) != seen:
            st.rerun(scope="app")

    poll()
