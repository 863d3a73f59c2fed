"""A run worker process: the half of `worker` that runs in a fresh interpreter.

`worker.RunManager` starts each process as `python -c "...child(fd, threads)"`
with a socket `fd`. The process fixes its threads (torch, BLAS, OpenMP) before
its first job, imports and touches what a first run needs, says ("ready", pid)
and serves jobs one at a time: ("run", id, job) opens `job.open()` and steps
it, sending ("update", id, update, finished, held) after each step, or
("error", id, one line, traceback); control messages between steps go to
`Work.control`; "stop" ends the process. The job protocol is in `worker`.
"""

from __future__ import annotations

import os
import signal
import traceback
from multiprocessing.connection import Connection

from .errors import ApmVizError


#: Environment a worker process starts with, so every library's thread pool has
#: `threads` threads from its first use (OpenBLAS and OpenMP spin their threads:
#: more threads than cores, across runs, measured 100x slower PCA on a busy machine).
def thread_env(threads: int) -> dict[str, str]:
    n = str(threads)
    return {"OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n, "MKL_DYNAMIC": "FALSE",
            "OMP_DYNAMIC": "FALSE"}


def fix_threads(threads: int):
    """What every worker process does before its first job; a process that wants
    to compare with a worker's result calls it too. Returns a limiter whose
    `restore_original_limits()` undoes the BLAS/OpenMP part."""
    os.environ.update({k: v for k, v in thread_env(threads).items() if k.endswith("DYNAMIC")})
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    return threadpool_limits(threads)


def _warm_up() -> None:
    """Import and touch what a first run needs, so its first frame comes at once."""
    import numpy as np

    from .islands import ProjectionConfig, Projector

    field = np.random.default_rng(0).normal(size=(4, 4, 8)).astype(np.float32)
    Projector(ProjectionConfig(method="pca", dims=3)).add(field)
    import openTSNE  # noqa: F401
    from openTSNE import affinity  # noqa: F401

    from apm_viz.jobs import warm_up  # torch and the engine

    warm_up()  # a tiny film's first step: the first real run's build and step are then warm


def child(fd: int, threads: int) -> None:
    """A worker process's entry point: serve jobs on the socket `fd` until told to stop."""
    _serve(Connection(fd), threads)


def _serve(conn, threads: int) -> None:
    """A worker process: run the jobs the manager sends, one at a time."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server's Ctrl-C is the server's
    fix_threads(threads)
    _warm_up()

    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "stop":
            return
        if msg[0] != "run":
            continue  # a control message for a job that already ended
        _, job_id, job = msg
        try:
            work = job.open()
            while True:
                while conn.poll() or (work.held and not work.finished):
                    ctl = conn.recv()
                    if ctl == "stop":
                        return
                    work.control(ctl)
                update = work.step()
                conn.send(("update", job_id, update, work.finished, work.held))
                if work.finished:
                    break
        except (EOFError, OSError):
            return
        except BaseException as err:  # reported to the page as one line, the process lives on
            message = str(err) if isinstance(err, ApmVizError) else f"{type(err).__name__}: {err}"
            conn.send(("error", job_id, message, traceback.format_exc()))
