"""The Ray runner: a job's items over a pool of Ray actors, rows streamed back.

Why actors, not Ray Data's `map_batches` nor plain tasks:
- An actor builds the job's worker (CLIP and text classifier, or a teacher)
  once in `__init__` and keeps it for every item it gets. A plain task would
  rely on worker-process reuse, which Ray turns off for GPU tasks
  (`max_calls=1`), so the teacher would be loaded once per image there.
- The driver keeps exactly one call in flight per actor and `ray.wait`s on
  them: each row reaches the driver, and DIR/results.jsonl, the moment it
  finishes; a new item goes to the actor that just got free. Resuming is the
  driver's filter over the items before anything starts (`runners.run_items`).
  Ray Data would add its own executor, progress bars and block sizing for
  work that is one item per call, and hide when a row is done.
- Faults are Ray's own: actors restart (`max_restarts=-1`) and a call that
  was running when its process died is retried on the restarted actor
  (`max_task_retries`). Rows are committed by the driver only, once per id,
  so a retried call can neither lose nor duplicate a row. Ctrl-C kills the
  actors; what was written stays.

Addresses: "local" starts a Ray on this machine (stopped at the end);
"auto" joins the cluster Ray finds (RAY_ADDRESS or the one `ray start`
made), "host:port" joins the cluster whose head is there, "ray://host:port"
joins through Ray Client. The address is probed first, for a one-line error
within seconds instead of Ray's long connection timeouts.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import ray

from .errors import ApmVizError
from .runners import Job, Log

PACKAGE = Path(__file__).resolve().parent
#: The object store of a local Ray: rows are small, a film's files a few MB.
LOCAL_OBJECT_STORE = 512 * 2**20
PROBE_SECONDS = 3.0


@dataclass(frozen=True)
class RayOptions:
    """Where and how big: the cluster's address and each task's share of a node.

    cpus_per_task, gpus_per_task: Ray resources of each actor (fractions
        allowed: 0.25 GPU puts four actors on one GPU).
    workers: actors in the pool (default: as many as the cluster's CPUs and
        GPUs hold, at most one per item).
    retries: how often a call is retried when its worker process dies.
    """

    address: Optional[str] = "local"
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0
    workers: Optional[int] = None
    retries: int = 3

    def check(self) -> None:
        if not self.cpus_per_task > 0:
            raise ApmVizError("--cpus-per-task must be above 0")
        if self.gpus_per_task < 0:
            raise ApmVizError("--gpus-per-task must be 0 or more")
        if self.gpus_per_task > 1 and self.gpus_per_task != int(self.gpus_per_task):
            raise ApmVizError("--gpus-per-task above 1 must be a whole number")
        if self.workers is not None and self.workers < 1:
            raise ApmVizError("--workers must be at least 1")


def _host_port(address: str) -> Optional[tuple[str, int, str]]:
    """(host, port, where) of "host:port" or "ray://host:port", and of what
    "auto" finds; None for "local" (and for "auto" when Ray will start nothing)."""
    if address == "local":
        return None
    where = address
    if address == "auto":
        try:
            from ray._private.services import canonicalize_bootstrap_address
        except ImportError:  # Ray moved it: let ray.init resolve "auto" itself
            return None
        try:
            address = canonicalize_bootstrap_address("auto")
        except (ConnectionError, ValueError) as err:
            raise ApmVizError(f"--ray auto: {_first_line(err)}") from None
        if address is None:
            return None
        where = f"{address} (found by --ray auto)"
    rest = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ApmVizError(f"--ray {address!r}: use local, auto, HOST:PORT or ray://HOST:PORT")
    return host.strip("[]"), int(port), where


def probe(address: str, timeout: float = PROBE_SECONDS) -> None:
    """Fail within `timeout` seconds, with one line, when nothing answers at `address`."""
    found = _host_port(address)
    if found is None:
        return
    host, port, where = found
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        why = f"no answer within {timeout:.0f} s" if isinstance(err, socket.timeout) else (err.strerror or str(err))
        raise ApmVizError(f"cannot reach a Ray cluster at {where} ({why}); start one with `ray start --head` "
                          "or use --ray local") from None


def connect(address: Optional[str], num_cpus: Optional[int] = None,
            object_store_memory: int = LOCAL_OBJECT_STORE) -> bool:
    """Connect this process to Ray; True when this call started (and so owns) it.

    address None: the connection this process already has (a notebook's or
    a test's `ray.init`). "local" starts a Ray here with `num_cpus` (default
    all), no dashboard and a small object store; its workers import this very
    package. Joining a cluster ships this package to its workers
    (`runtime_env` py_modules); its nodes need the same dependencies.
    """
    if address is None:
        if not ray.is_initialized():
            raise ApmVizError("no Ray connection in this process; give an address (local, auto, HOST:PORT)")
        return False
    probe(address)
    if ray.is_initialized():
        raise ApmVizError("this process is already connected to Ray; leave out the address to use that connection")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        if address == "local":
            path = os.pathsep.join([str(PACKAGE.parent)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                     object_store_memory=object_store_memory, runtime_env={"env_vars": {"PYTHONPATH": path}})
        else:
            ray.init(address=address, runtime_env={"py_modules": [str(PACKAGE)], "excludes": ["__pycache__"]})
    except Exception as err:  # Ray raises plain Exception too (a node that timed out starting)
        raise ApmVizError(f"Ray at {address}: {_first_line(err)}") from None
    return True


class _Actor:
    """One worker process: the job's worker, built once, then one item per call."""

    def __init__(self, job: Job):
        self.job = job
        self.current: Optional[str] = None
        self.worker = job.make_worker(job.settings, lambda s: print(s, flush=True))

    def ready(self) -> tuple[int, dict]:
        return os.getpid(), self.job.describe(self.worker)

    def run(self, item) -> tuple[dict, int]:
        self.current = item.id
        try:
            return self.job.run_item(item, self.job.settings, self.worker), os.getpid()
        finally:
            self.current = None

    @ray.method(concurrency_group="status")
    def status(self) -> tuple[int, Optional[str]]:
        """(pid, the id of the item running now or None), answered while an item runs."""
        return os.getpid(), self.current


_RemoteActor = ray.remote(concurrency_groups={"status": 1})(_Actor)


class RayRunner:
    """Items over a pool of actors; rows come back in the order they finish.

    After a run: `ran_on` maps each row's id to the pid that made it, and
    `restarts` lists (item id, pid that died, pid that ran it again).
    """

    name = "ray"

    def __init__(self, options: RayOptions = RayOptions()):
        options.check()
        self.options = options
        self.actors: list = []
        self.ran_on: dict[str, int] = {}
        self.restarts: list[tuple[str, int, int]] = []

    def _pool_size(self, n_items: int) -> int:
        o = self.options
        res = ray.cluster_resources()
        cpus, gpus = res.get("CPU", 0.0), res.get("GPU", 0.0)
        n = math.floor(cpus / o.cpus_per_task + 1e-9)
        if o.gpus_per_task > 0:
            n = min(n, math.floor(gpus / o.gpus_per_task + 1e-9))
        if n < 1:
            raise ApmVizError(f"the Ray cluster has {cpus:g} CPUs and {gpus:g} GPUs: not enough for one task of "
                              f"{o.cpus_per_task:g} CPUs and {o.gpus_per_task:g} GPUs")
        return max(1, min(n, o.workers or n, n_items))

    def running(self, timeout: float = 5.0) -> dict[int, str]:
        """{pid: item id} of the actors busy with an item now (those that answer within `timeout`)."""
        refs = [a.status.remote() for a in list(self.actors)]
        if not refs:
            return {}
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
        out = {}
        for ref in done:
            try:
                pid, item = ray.get(ref)
            except ray.exceptions.RayError:
                continue
            if item is not None:
                out[pid] = item
        return out

    def rows(self, job: Job, items: Sequence, on_ready: Callable[[dict], None], log: Log) -> Iterator[dict]:
        if not items:
            return
        owned = connect(self.options.address, num_cpus=None)
        try:
            yield from self._rows(job, items, on_ready, log)
        finally:
            for a in self.actors:
                ray.kill(a, no_restart=True)
            self.actors = []
            if owned:
                ray.shutdown()

    def _rows(self, job: Job, items: Sequence, on_ready, log: Log) -> Iterator[dict]:
        o = self.options
        n = self._pool_size(len(items))
        log(f"Ray: {n} workers of {o.cpus_per_task:g} CPU and {o.gpus_per_task:g} GPU each, {len(items)} items")
        remote = _RemoteActor.options(num_cpus=o.cpus_per_task, num_gpus=o.gpus_per_task, max_restarts=-1,
                                      max_task_retries=o.retries)
        self.actors = [remote.remote(job) for _ in range(n)]
        ready = {a.ready.remote(): a for a in self.actors}
        pid: dict[int, Optional[int]] = {id(a): None for a in self.actors}
        queue = deque(items)
        inflight: dict = {}

        def submit(actor) -> None:
            if queue:
                item = queue.popleft()
                inflight[actor.run.remote(item)] = (actor, item)

        for a in self.actors:
            submit(a)
        described = False
        while inflight:
            done, _ = ray.wait(list(ready) + list(inflight), num_returns=1, timeout=0.5)
            for ref in done:
                if ref in ready:
                    actor = ready.pop(ref)
                    try:
                        pid[id(actor)], info = ray.get(ref)
                    except ray.exceptions.RayActorError:
                        continue  # it died starting; its calls are retried once it restarts
                    if not described:
                        described = True
                        on_ready(info)
                    continue
                actor, item = inflight.pop(ref)
                before = pid[id(actor)]  # the process it had when last heard of
                try:
                    row, after = ray.get(ref)
                except ray.exceptions.RayActorError as err:
                    raise ApmVizError(f"{item.id}: its worker died {o.retries + 1} times ({_first_line(err)}); "
                                      "the rows written are kept, and running again retries it") from None
                if before is not None and after != before:
                    self.restarts.append((item.id, before, after))
                    log(f"worker pid {before} died; Ray restarted it as pid {after}, which ran {item.id}")
                pid[id(actor)] = after
                self.ran_on[row["id"]] = after
                submit(actor)
                yield row


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__
