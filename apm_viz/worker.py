"""Runs that outlive a page's reruns: long work in a small pool of long-lived
worker processes, under one bounded run manager that a server owns.

Why processes: a run's result must not depend on what else the server does.
Each worker process imports torch once, fixes its threads
(`torch.set_num_threads(threads)`, MKL_DYNAMIC=FALSE) and runs one job at a
time, so no two runs share a thread pool, an allocator or a generator, and the
server's own threads (pages, figures, other sessions) never slice a run. Long
work also leaves the page's reruns: pages only read what the run sends back.

A job is anything picklable with

    job.key               hashable: everything that decides the result; a
                          finished result is reused for an equal key
    job.check()           (server, optional) raise ApmVizError to refuse early
    job.open() -> Work    (worker process) build what the job needs
    job.view() -> View    (server) the readable state, empty at first

and its two halves are

    Work.step() -> update     a short slice of work (well under a second);
                              the update (picklable) says what is new
    Work.finished: bool       nothing more will come
    Work.held: bool           wait for a control message before stepping on
                              (e.g. after a Step of ten iterations)
    Work.control(msg)         "cancel" (finish at the next step, keeping what
                              is done), ("step", n), "resume"

    View.apply(update)        fold an update in (pages read the view)
    View.nbytes: int          what it holds, for the store's byte bound
    View.complete: bool       finished as asked (a result worth reusing)

`RunManager` starts `max_runs` worker processes (fresh interpreters: nothing
of the server's threads or of its `__main__` is inherited) and keeps them. `submit(job, owner)` returns a
`Handle` at once: a finished view from the store (same key), a live run of the
same key (the owner joins it), or a new run, queued while every process is
busy (`Handle.place` is its place in the queue). Pause and resume stop and
continue the worker process itself (SIGSTOP / SIGCONT), so they take effect at
once, whatever the run is doing; cancel takes effect at the next step. Owners
(browser sessions) that leave or change their settings `release` their runs:
a run no owner holds is cancelled. Finished views go to a store bounded in
bytes (`store`); it keeps only what pages and exports read, never a trainer.
What runs inside a worker process (its threads, its warm-up, the job loop) is
`worker_process`.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Optional, Protocol

from .store import Store, store_limit
from .worker_process import thread_env

#: Environment: how many runs train at once (worker processes).
MAX_RUNS_ENV = "APM_VIZ_MAX_RUNS"
#: Environment: torch threads per worker process.
THREADS_ENV = "APM_VIZ_RUN_THREADS"
#: The folder that holds the apm_viz package (a worker imports it from there).
ROOT = Path(__file__).resolve().parents[1]


class Work(Protocol):
    finished: bool
    held: bool

    def step(self) -> Any: ...

    def control(self, msg) -> None: ...


class View(Protocol):
    nbytes: int
    complete: bool

    def apply(self, update) -> None: ...


def default_max_runs() -> int:
    value = os.environ.get(MAX_RUNS_ENV, "").strip()
    if value:
        return max(1, int(value))
    return max(1, min(2, os.cpu_count() or 1))


def default_threads(max_runs: int) -> int:
    value = os.environ.get(THREADS_ENV, "").strip()
    if value:
        return max(1, int(value))
    return max(1, (os.cpu_count() or 1) // max_runs)


QUEUED, RUNNING, PAUSED, HELD, DONE, CANCELLED, FAILED = (
    "queued", "running", "paused", "held", "done", "cancelled", "failed")
LIVE = (QUEUED, RUNNING, PAUSED, HELD)


@dataclass(eq=False)
class Handle:
    """One run as the server sees it. Pages read `view`, `status`, `version`.

    status: queued, running, paused (by the user), held (a Step ended),
        done, cancelled or failed (`message` says why).
    version: grows with every update, so a page can tell whether anything is new.
    owners: the sessions that hold this run.
    """

    id: int
    key: Hashable
    job: Any
    view: Any
    manager: "RunManager"
    status: str = QUEUED
    message: str = ""
    version: int = 0
    owners: set = field(default_factory=set)
    submitted: float = field(default_factory=time.monotonic)
    cancel_requested: bool = False
    held_at_start: bool = False  # (queued) start held: Step, or paused before it started
    pending: list = field(default_factory=list)  # (queued) control messages to deliver at start

    @property
    def live(self) -> bool:
        return self.status in LIVE

    @property
    def place(self) -> Optional[int]:
        """1 for the next run to start, 2 after it...; None when not queued."""
        return self.manager.queue_place(self)

    def pause(self) -> None:
        self.manager.pause(self)

    def resume(self) -> None:
        self.manager.resume(self)

    def cancel(self) -> None:
        self.manager.cancel(self)

    def step(self, n: int) -> None:
        """Advance n more iterations, then hold (starts a queued run as usual)."""
        self.manager.control(self, ("step", n))


class _Slot:
    """One worker process and the run it serves."""

    def __init__(self, manager: "RunManager", index: int):
        self.manager, self.index = manager, index
        self.handle: Optional[Handle] = None
        self.stopped = False  # SIGSTOP in force
        self.ready = threading.Event()
        self.pid: Optional[int] = None
        self.start()

    def start(self) -> None:
        # A plain `python -c` child, not multiprocessing's spawn: spawn re-imports the parent's
        # __main__, which under Streamlit is the app script itself (and would start servers of its own).
        parent, child = socket.socketpair()
        env = dict(os.environ, **thread_env(self.manager.threads))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        code = f"from apm_viz.worker_process import child; child({child.fileno()}, {self.manager.threads})"
        self.process = subprocess.Popen([sys.executable, "-c", code], pass_fds=(child.fileno(),), env=env,
                                        stdin=subprocess.DEVNULL)
        child.close()
        self.conn = Connection(parent.detach())
        self.ready.clear()
        self.reader = threading.Thread(target=self._read, daemon=True, name=f"apm-viz-reader-{self.index}")
        self.reader.start()

    def send(self, msg) -> None:
        try:
            self.conn.send(msg)
        except (OSError, ValueError):
            pass  # the reader notices the dead process

    def signal(self, sig) -> None:
        try:
            os.kill(self.process.pid, sig)
        except (OSError, TypeError):
            pass

    def _read(self) -> None:
        conn = self.conn
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                self.manager._worker_died(self)
                return
            self.manager._on_message(self, msg)


class RunManager:
    """Bounded runs in worker processes, a queue, and a byte-bounded store.

    max_runs: worker processes, i.e. runs that train at once (MAX_RUNS_ENV).
    threads: torch threads per worker (THREADS_ENV; cores / max_runs).
    store_bytes: what finished views may hold together (store.STORE_ENV).
    """

    def __init__(self, max_runs: Optional[int] = None, threads: Optional[int] = None,
                 store_bytes: Optional[int] = None):
        self.max_runs = max_runs or default_max_runs()
        self.threads = threads or default_threads(self.max_runs)
        self.store = Store(store_bytes if store_bytes is not None else store_limit())
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._ids = itertools.count(1)
        self._queue: list[Handle] = []
        self._live: dict[Hashable, Handle] = {}
        self._closed = False
        self._slots = [_Slot(self, i) for i in range(self.max_runs)]

    # -- asking for runs --
    def submit(self, job, owner: Hashable = None, start: bool = True) -> Handle:
        """A handle for `job`: its finished result, the live run of its key, or a new run.

        start=False queues the new run held (nothing trains until `control`
        sends it a step or resume). Raises ApmVizError when `job.check()` does.
        """
        with self._lock:
            done = self.store.get(job.key)
            if done is not None:
                h = Handle(next(self._ids), job.key, None, done, self, status=DONE)
                h.owners.add(owner)
                return h
            h = self._live.get(job.key)
            if h is not None:
                h.owners.add(owner)
                return h
        check = getattr(job, "check", None)
        if check is not None:
            check()
        with self._lock:
            h = Handle(next(self._ids), job.key, job, job.view(), self)
            h.owners.add(owner)
            h.held_at_start = not start
            self._live[job.key] = h
            self._queue.append(h)
            self._dispatch()
            return h

    def finished(self, key: Hashable):
        """The finished view of `key`, or None."""
        return self.store.get(key)

    def queue_place(self, handle: Handle) -> Optional[int]:
        with self._lock:
            try:
                return self._queue.index(handle) + 1
            except ValueError:
                return None

    def handles(self) -> list[Handle]:
        with self._lock:
            return list(self._live.values())

    # -- control --
    def pause(self, handle: Handle) -> None:
        with self._lock:
            slot = self._slot_of(handle)
            if slot is not None and handle.status == RUNNING:
                slot.signal(signal.SIGSTOP)
                slot.stopped = True
                handle.status = PAUSED
                handle.version += 1
            elif handle.status == QUEUED:
                handle.held_at_start = True
                handle.version += 1

    def resume(self, handle: Handle) -> None:
        with self._lock:
            slot = self._slot_of(handle)
            if slot is not None and handle.status in (PAUSED, HELD):
                self._continue(slot)
                if handle.status == HELD:
                    slot.send("resume")
                handle.status = RUNNING
                handle.version += 1
            elif handle.status == QUEUED:
                handle.held_at_start = False
                handle.version += 1

    def control(self, handle: Handle, msg) -> None:
        """Send a job-level control message (("step", n), "resume", ...)."""
        with self._lock:
            slot = self._slot_of(handle)
            if slot is None:
                if handle.status == QUEUED:
                    handle.pending.append(msg)
                return
            self._continue(slot)
            slot.send(msg)
            if handle.status in (PAUSED, HELD):
                handle.status = RUNNING
                handle.version += 1

    def cancel(self, handle: Handle, message: str = "cancelled") -> None:
        """Stop a run: a queued one at once, a running one at its next step
        (what it has done so far stays in its view)."""
        with self._lock:
            if handle.status == QUEUED:
                self._queue.remove(handle)
                self._forget(handle)
                handle.status, handle.message = CANCELLED, message
                handle.version += 1
                self._changed.notify_all()
                return
            slot = self._slot_of(handle)
            if slot is not None and not handle.cancel_requested:
                handle.cancel_requested = True
                handle.message = message
                self._continue(slot)
                slot.send("cancel")

    def release(self, handle: Handle, owner: Hashable) -> None:
        """`owner` no longer needs `handle`; a live run nobody holds is cancelled."""
        with self._lock:
            handle.owners.discard(owner)
            if handle.live and not handle.owners:
                self.cancel(handle, "cancelled: nobody is watching it any more")

    def release_owner(self, owner: Hashable, keep: Iterable[Handle] = ()) -> None:
        """Release every live run `owner` holds except those in `keep`."""
        keep_ids = {h.id for h in keep}
        for h in self.handles():
            if owner in h.owners and h.id not in keep_ids:
                self.release(h, owner)

    def reap(self, is_active: Callable[[Hashable], bool]) -> int:
        """Release the runs of owners that are gone (sessions closed); returns how many."""
        n = 0
        for h in self.handles():
            for owner in list(h.owners):
                if owner is not None and not is_active(owner):
                    self.release(h, owner)
                    n += 1
        return n

    def wait(self, handle: Handle, timeout: Optional[float] = None,
             until: Optional[Callable[[Handle], bool]] = None) -> bool:
        """Block until the run has ended (or `until(handle)`); False on timeout."""
        until = until or (lambda h: not h.live)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while not until(handle):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def wait_ready(self, timeout: Optional[float] = None) -> bool:
        """Block until every worker process has imported torch (a warm pool)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for slot in self._slots:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not slot.ready.wait(left):
                return False
        return True

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            for h in list(self._queue):
                self.cancel(h, "the server stopped")
            for slot in self._slots:
                self._continue(slot)
                slot.send(("stop",))
        for slot in self._slots:
            try:
                slot.process.wait(5)
            except subprocess.TimeoutExpired:
                slot.process.kill()
                slot.process.wait(5)

    def ready_slots(self) -> int:
        """Worker processes that have started (imported torch) and wait for or run jobs."""
        return sum(s.ready.is_set() for s in self._slots)

    def pids(self) -> list[Optional[int]]:
        return [s.pid for s in self._slots]

    # -- inside --
    def _slot_of(self, handle: Handle) -> Optional[_Slot]:
        for slot in self._slots:
            if slot.handle is handle:
                return slot
        return None

    @staticmethod
    def _continue(slot: _Slot) -> None:
        if slot.stopped:
            slot.signal(signal.SIGCONT)
            slot.stopped = False

    def _forget(self, handle: Handle) -> None:
        if self._live.get(handle.key) is handle:
            del self._live[handle.key]

    def _dispatch(self) -> None:
        if self._closed:
            return
        for slot in self._slots:
            if not self._queue:
                return
            if slot.handle is None and slot.ready.is_set():
                h = self._queue.pop(0)
                slot.handle = h
                slot.send(("run", h.id, h.job))
                if h.held_at_start:
                    slot.send("hold")
                for msg in h.pending:
                    slot.send(msg)
                h.status = HELD if h.held_at_start and not h.pending else RUNNING
                h.pending = []
                h.version += 1
        self._changed.notify_all()

    def _on_message(self, slot: _Slot, msg) -> None:
        kind = msg[0]
        with self._lock:
            if kind == "ready":
                slot.pid = msg[1]
                slot.ready.set()
                self._dispatch()
                return
            h = slot.handle
            if h is None or msg[1] != h.id:
                return
            if kind == "update":
                _, _, update, finished, held = msg
                if update is not None:
                    h.view.apply(update)
                if finished:
                    self._end(slot, h, CANCELLED if h.cancel_requested else DONE)
                else:
                    if held and h.status == RUNNING:
                        h.status = HELD
                    h.version += 1
            elif kind == "error":
                h.message = msg[2]
                self._end(slot, h, FAILED)
            self._changed.notify_all()

    def _end(self, slot: _Slot, h: Handle, status: str) -> None:
        h.status = status
        if status == DONE and getattr(h.view, "complete", True):
            self.store.put(h.key, h.view)
        h.job = None  # the job's inputs are the view's now; nothing else is kept
        h.version += 1
        self._forget(h)
        slot.handle = None
        self._dispatch()

    def _worker_died(self, slot: _Slot) -> None:
        with self._lock:
            h = slot.handle
            if h is not None:
                h.message = "the run's worker process stopped unexpectedly"
                self._end(slot, h, FAILED)
            if self._closed:
                return
            slot.handle, slot.stopped = None, False
            try:
                slot.process.wait(5)  # reap it
            except subprocess.TimeoutExpired:
                slot.process.kill()
            slot.start()  # a fresh process takes its place
            self._changed.notify_all()
