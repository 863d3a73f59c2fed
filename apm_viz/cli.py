"""Command line: `python -m apm_viz islands IMAGE --out DIR ...` (and `apm-viz`).

Bad input exits with status 2 and one line `error: ...` on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from .errors import ApmVizError
from .islands import DEFAULT_MIN_SIZE, DEFAULT_TAU, ProjectionConfig
from .model import PRESETS
from .teachers import DINOV2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, status 2, like every other bad input
        self.exit(2, f"error: {message}\n")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--iters", type=int, default=250, help="TTT iterations (default 250)")
    p.add_argument("--grid", type=int, choices=(16, 32, 64), default=32, help="patch grid: 16 (224 px), 32 (448 px)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="laptop", help="APM sizes (default laptop)")
    p.add_argument("--loss", choices=("token", "grid", "grid+rgb", "rgb"), default="token",
                   help="what is supervised (default token: the paper's islands experiment)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 1e-4 token, 1e-3 grid)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--teacher", choices=sorted(DINOV2), default="dinov2-small")
    p.add_argument("--weights", default=None, help="local teacher weights file (.safetensors or .pth)")
    p.add_argument("--offline", action="store_true", help="never try to download weights")
    p.add_argument("--projection", choices=("tsne", "pca"), default="tsne")
    p.add_argument("--perplexity", type=float, default=30.0)
    p.add_argument("--tau", type=float, default=DEFAULT_TAU, help="agreement threshold for island counts")
    p.add_argument("--min-size", type=int, default=DEFAULT_MIN_SIZE, help="smallest island counted")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="apm-viz", description="Islands of agreement with an Asynchronous Perception Machine.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("islands", help="overfit an APM on one image and write its islands over iterations")
    p.add_argument("image", help="an image file (PNG, JPEG, WebP, BMP, TIFF, GIF)")
    p.add_argument("--out", required=True, help="output folder")
    _add_run_options(p)
    return parser


def settings_from_args(args) -> "Settings":
    from .pipeline import Settings
    from .ttt import recommended

    if args.iters < 1:
        raise ApmVizError("--iters must be at least 1")
    ttt = recommended(args.loss, preset=args.preset, iters=args.iters, lr=args.lr, seed=args.seed)
    proj = ProjectionConfig(method=args.projection, dims=3, perplexity=args.perplexity, seed=args.seed)
    return Settings(grid=args.grid, teacher=args.teacher, weights=args.weights, allow_download=not args.offline,
                    ttt=ttt, projection=proj, tau=args.tau, min_size=args.min_size)


def _progress_printer():
    def progress(run):
        i, loss = run.losses[-1]
        print(f"\r  iteration {i:4d}/{run.config.iters}  loss {loss:.3e}", end="", file=sys.stderr, flush=True)
        if run.finished:
            print(file=sys.stderr)
    return progress


def cmd_islands(args) -> int:
    from .pipeline import compute, write_outputs

    settings = settings_from_args(args)
    result = compute(args.image, settings, progress=_progress_printer(),
                     log=lambda s: print(s, file=sys.stderr))
    if result.teacher.weights.warning:
        print(f"warning: {result.teacher.weights.warning}", file=sys.stderr)
    written = write_outputs(result, Path(args.out))
    counts = ", ".join(f"{i}:{c}" for i, c in result.islands)
    print(f"loss fell {result.run.loss_drop():.3g}-fold; islands by iteration {counts}; "
          f"teacher {result.teacher_islands}; wrote {len(written)} files to {args.out}")
    return 0 if result.run.status in ("done", "cancelled") else 1


COMMANDS = {"islands": cmd_islands}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ApmVizError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
