"""Command line for many images: `films FOLDER` and the Ray options of `films` and `evaluate`.

    python -m apm_viz films FOLDER --out DIR [islands options] [--ray ADDRESS --cpus-per-task C --gpus-per-task F]
    python -m apm_viz evaluate DATASET ... --ray ADDRESS

Without --ray everything runs in this process. --ray local starts a Ray on
this machine; --ray auto, HOST:PORT or ray://HOST:PORT joins a cluster.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from .errors import ApmVizError


def _log(s: str) -> None:
    print(s, file=sys.stderr)


def add_ray_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Ray (many images, many machines)")
    g.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="run on Ray: local (start one here), auto (the cluster Ray finds), HOST:PORT or "
                        "ray://HOST:PORT (join one); default: in this process")
    g.add_argument("--cpus-per-task", type=float, default=1.0, help="CPUs per Ray worker (default 1)")
    g.add_argument("--gpus-per-task", type=float, default=0.0,
                   help="GPUs per Ray worker, fractions allowed (0.25: four workers share a GPU; default 0)")
    g.add_argument("--workers", type=int, default=None,
                   help="Ray workers (default: as many as the cluster's CPUs and GPUs hold)")


def runner_from_args(args):
    """The runner the options name: None (in this process) or a RayRunner."""
    if args.ray is None:
        if args.gpus_per_task or args.workers is not None or args.cpus_per_task != 1.0:
            raise ApmVizError("--cpus-per-task, --gpus-per-task and --workers need --ray")
        return None
    from .ray_runner import RayOptions, RayRunner, probe

    runner = RayRunner(RayOptions(args.ray, args.cpus_per_task, args.gpus_per_task, args.workers))
    probe(args.ray)  # an address nobody answers at fails here, in seconds, before anything is written
    return runner


def ray_device(text: str, gpus_per_task: float) -> str:
    """The TTT device on Ray workers: Ray hands each worker its GPU share, so it is 'cuda' or 'cpu'."""
    if text == "auto":
        return "cuda" if gpus_per_task > 0 else "cpu"
    if text.startswith("cuda"):
        if not gpus_per_task > 0:
            raise ApmVizError(f"--device {text} with --ray needs --gpus-per-task (each worker's share of a GPU)")
        if text != "cuda":
            raise ApmVizError("--device cuda:N with --ray: Ray picks each worker's GPU; use --device cuda or auto")
        return "cuda"
    if text == "cpu":
        if gpus_per_task > 0:
            raise ApmVizError("--device cpu with --gpus-per-task: the workers would hold GPUs they never use")
        return "cpu"
    raise ApmVizError(f"--device must be cpu, cuda or auto with --ray, got {text!r}")


def add_commands(sub, run_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add `films` to the CLI's subparsers; `run_options` adds the islands command's options."""
    p = sub.add_parser("films", help="one islands film per image of a folder, with metrics and a summary "
                                     "(resumable; in this process or on Ray)")
    p.add_argument("folder", help="a folder of images (PNG, JPEG, WebP, BMP, TIFF, GIF), searched at any depth")
    p.add_argument("--out", required=True, help="output folder: films/<image>/, results.jsonl, summary.json, "
                                                "summary.md")
    run_options(p)
    add_ray_options(p)


def cmd_films(args) -> int:
    from dataclasses import replace

    from tqdm import tqdm

    from .cli import settings_from_args
    from .films import run
    from .results import RESULTS

    settings = settings_from_args(args)
    runner = runner_from_args(args)
    if runner is not None:
        settings = replace(settings, ttt=replace(settings.ttt, device=ray_device("auto", args.gpus_per_task)))
    bar = None
    errors = 0

    def progress(done, total, row):
        nonlocal bar, errors
        if bar is None:
            bar = tqdm(total=total, initial=done, unit="film", file=sys.stderr, dynamic_ncols=True)
            return
        bar.update(1)
        if "error" in row:
            errors += 1
        else:
            bar.set_postfix_str(f"{row['id']}: {row['islands_last']} islands; errors {errors}")

    try:
        summary = run(args.folder, settings, Path(args.out), runner=runner, progress=progress, log=_log)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        print(f"error: interrupted; every finished film is kept in {Path(args.out)}, its rows in "
              f"{Path(args.out) / RESULTS}, and running the same command again resumes", file=sys.stderr)
        return 130
    if bar is not None:
        bar.close()
    shown = [f"{r['id']} {r['islands_last']}" for r in summary["images"] if r.get("error") is None][:6]
    more = f", … {summary['films'] - 6} more" if summary["films"] > 6 else ""
    print(f"{summary['films']} films ({summary['errors']} errors); islands at the last snapshot: "
          f"{', '.join(shown) or '–'}{more}; wrote {args.out}/summary.md")
    return 0


COMMANDS = {"films": cmd_films}
