"""Grid fit against the positional code's highest frequency (`pos_scale`, rad
per grid step), everything else at `ttt.GRID_DEFAULTS`, one seed.

At exactly pi (the grid's Nyquist rate) the highest sin channel is 0 at every
grid point: it never trains, yet reaches +-0.71 at the 2x query points. For
each scale this prints the grid MSE and the mean relative L1 error after the
run, the fit with the local patch I_xy (`compare.converging_config`), and how
far the least-used code channel rises over the grid and over the 2x points.

    python bench/bench_pos_scale.py [--grid 32] [--iters 250] [--seed 0] [--scales pi,2.8,2.5,2,1.57]
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from common import SAMPLE, log, teacher


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--grid", type=int, default=32)
    ap.add_argument("--iters", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scales", default="pi,2.8,2.5,2,1.57")
    args = ap.parse_args()

    from apm_viz.compare import converging_config, relative_error
    from apm_viz.images import load_image
    from apm_viz.model import grid_coords, positional_code
    from apm_viz.pipeline import encode
    from apm_viz.ttt import recommended, run_ttt

    out = encode(load_image(SAMPLE), teacher(), args.grid)
    log(f"chelsea {args.grid}x{args.grid}, random ViT-S/14, laptop preset, {args.iters} iterations, seed {args.seed}")
    log("scale   | grid MSE  rel. L1 | with I_xy: MSE  rel. L1 | least channel max |code| grid / 2x")
    for text in args.scales.split(","):
        scale = math.pi if text.strip() == "pi" else float(text)
        row = []
        for make in (recommended, converging_config):
            cfg = make("grid", iters=args.iters, snapshots=(args.iters,), seed=args.seed, pos_scale=scale)
            run = run_ttt(out, cfg)
            row += [run.losses[-1][1], float(relative_error(run.snapshots[-1].field, out.grid).mean())]
        apm = cfg.apm_config()
        on_grid = positional_code(grid_coords(args.grid, args.grid), apm.pos_dim, apm.pos_base, scale).numpy()
        at_2x = positional_code(grid_coords(args.grid, args.grid, 2.0), apm.pos_dim, apm.pos_base, scale).numpy()
        least = int(np.abs(on_grid).max(axis=0).argmin())
        log(f"{scale:7.4f} | {row[0]:.4f}    {row[1]:.4f}  | {row[2]:.4f}          {row[3]:.4f}   | "
            f"{np.abs(on_grid[:, least]).max():.3g} / {np.abs(at_2x[:, least]).max():.3g}")


if __name__ == "__main__":
    main()
