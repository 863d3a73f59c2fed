"""What a finished film holds in memory: the film the app used to keep (an
`IslandsFilm`, trainer included) against the view the run manager keeps now
(`apm_viz.jobs.FilmView`: teacher output, losses, snapshots, frames).

    python bench/bench_store.py [--grid 32] [--iters 250] [--preset laptop]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from common import SAMPLE


def tensor_bytes(*objs) -> int:
    """Bytes of every numpy array and torch tensor reachable from objs (each storage once)."""
    import gc

    import torch

    seen, storages, total = set(), set(), 0
    stack = list(objs)
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        if isinstance(o, torch.Tensor):
            for t in (o, o.grad) if o.grad is not None else (o,):
                ptr = t.untyped_storage().data_ptr()
                if ptr not in storages:
                    storages.add(ptr)
                    total += t.untyped_storage().nbytes()
            continue
        if isinstance(o, np.ndarray):
            ptr = o.__array_interface__["data"][0]
            if ptr not in storages:  # (arrays that share one buffer from its start count once)
                storages.add(ptr)
                total += o.nbytes
            continue
        if isinstance(o, (str, bytes, int, float, type)) or callable(o) and not hasattr(o, "__dict__"):
            continue
        if isinstance(o, torch.nn.Module):
            stack.extend(o.parameters())
            stack.extend(o.buffers())
            continue
        if isinstance(o, torch.optim.Optimizer):
            for state in o.state.values():
                stack.extend(state.values())
            stack.extend(p for g in o.param_groups for p in g["params"])
            continue
        if isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, (list, tuple, set)):
            stack.extend(o)
        elif hasattr(o, "__dict__"):
            stack.extend(vars(o).values())
        elif hasattr(o, "__slots__"):
            stack.extend(getattr(o, s) for s in o.__slots__ if hasattr(o, s))
    del gc
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--grid", type=int, default=32)
    ap.add_argument("--iters", type=int, default=250)
    ap.add_argument("--preset", default="laptop")
    args = ap.parse_args()

    from apm_viz.film import IslandsFilm
    from apm_viz.images import load_image
    from apm_viz.jobs import FilmWork, film_job
    from apm_viz.pipeline import encode
    from apm_viz.teachers import create_teacher
    from apm_viz.ttt import recommended

    teacher = create_teacher("dinov2-small", weights="random")
    out = encode(load_image(SAMPLE), teacher, args.grid)
    config = recommended("grid", preset=args.preset, iters=args.iters)
    t0 = time.perf_counter()
    job = film_job("bench", out, config)
    work, view = FilmWork(job), job.view()
    while not work.finished:
        view.apply(work.step())
    seconds = time.perf_counter() - t0
    film: IslandsFilm = work.film
    before = tensor_bytes(film)
    after = view.nbytes
    trainer = tensor_bytes(film.trainer.model, film.trainer.optimizer)
    print(json.dumps({"grid": args.grid, "iters": args.iters, "preset": args.preset, "snapshots": len(view.run.snapshots),
                      "old_store_film_MB": round(before / 2**20, 2), "of_which_model_and_adam_MB": round(trainer / 2**20, 2),
                      "new_store_view_nbytes_MB": round(after / 2**20, 2),
                      "new_store_view_walked_MB": round(tensor_bytes(view) / 2**20, 2),
                      "film_seconds": round(seconds, 1)}))


if __name__ == "__main__":
    main()
