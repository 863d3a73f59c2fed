"""Runners: one per-item function over many items, here or on a Ray cluster.

A `Job` names the per-item function and what it shares: `make_worker`
builds, once per process, what every item needs (a CLIP and its text
classifier, a teacher); `run_item(item, settings, worker)` turns one item
into one result row, keyed by the row's `id`. A runner only decides where
the calls happen:

- `InProcess`: this process, one item after another (the embedded default);
- `ray_runner.RayRunner`: a pool of Ray actors, one worker each.

Both call the same `run_item`, so the rows are the same whichever runs them.
`run_items` is the driver's side, the same for both: it skips the items
already in DIR/results.jsonl and commits each row as it arrives, in the
order rows finish. Every function a job names must be importable by module
path (a top-level function), so that a Ray worker can load it.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Protocol, Sequence

from .results import ResultsFile, pending

Log = Callable[[str], None]


def _quiet(s: str) -> None:
    pass


@dataclass(frozen=True)
class Job:
    """A per-item function and what it shares across items.

    settings: picklable; with the item, it decides every row.
    make_worker(settings, log) -> worker: built once per process.
    run_item(item, settings, worker) -> row: a dict with the item's "id".
    describe(worker) -> {"weights": label, "warning": text or None}, said once.
    """

    settings: Any
    make_worker: Callable[[Any, Log], Any]
    run_item: Callable[[Any, Any, Any], dict]
    describe: Callable[[Any], dict]


class Runner(Protocol):
    def rows(self, job: Job, items: Sequence, on_ready: Callable[[dict], None], log: Log) -> Iterator[dict]:
        """Rows of `items` as they finish (any order); on_ready(describe(worker)) once a worker is built."""


class InProcess:
    """Every item in this process, one after another."""

    name = "in-process"

    def rows(self, job: Job, items: Sequence, on_ready: Callable[[dict], None], log: Log) -> Iterator[dict]:
        if not items:
            return
        worker = job.make_worker(job.settings, log)
        on_ready(job.describe(worker))
        for item in items:
            yield job.run_item(item, job.settings, worker)


def run_items(job: Job, items: Sequence, results: ResultsFile, runner: Optional[Runner] = None,
              commit: Optional[Callable[[dict], None]] = None,
              progress: Optional[Callable[[int, int, Optional[dict]], None]] = None, log: Log = _quiet,
              info: Optional[dict] = None) -> dict:
    """Run every item whose row is not in `results` yet; commit rows as they arrive.

    commit(row) writes a row (default `results.append`). progress(done,
    total, row) after each row, and once with row None at the start.
    info gets {"weights", "warning"} from the first worker (from an earlier
    summary.json when nothing was left to run); pass a dict to read it even
    when the run is interrupted. An interrupt (Ctrl-C) stops the runner and
    propagates; every row committed before it stays.
    """
    info = {} if info is None else info
    info.update(_previous_info(results))
    todo = list(pending(items, results))
    skipped = len(items) - len(todo)
    if skipped:
        log(f"resuming: {skipped} of {len(items)} rows already in {results.path}")

    def ready(described: dict) -> None:
        info.update(described)
        if described.get("warning"):
            log(f"warning: {described['warning']}")

    if progress is not None:
        progress(skipped, len(items), None)
    commit = commit or results.append
    with contextlib.closing((runner or InProcess()).rows(job, todo, ready, log)) as rows:
        for k, row in enumerate(rows, skipped + 1):
            commit(row)
            if progress is not None:
                progress(k, len(items), row)
    return info


def _previous_info(results: ResultsFile) -> dict:
    try:
        old = json.loads((results.path.parent / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
    return {k: old[k] for k in ("weights", "warning") if k in old} if isinstance(old, dict) else {}
