"""The whole islands film per preset and grid, as the app runs it: teacher
(build + encode), 250 TTT iterations with the default snapshots, and the live
2-D and 3-D aligned t-SNE frames, advanced in 0.6 s slices like the page does.

Time to the first frame on screen: from pressing Run (teacher already built
and its output cached, as the app keeps them) until frame 0 is projected;
"cold" adds building the teacher and encoding the image.

    python bench/bench_film.py [--quick]
"""

from __future__ import annotations

import argparse
import time

from common import SAMPLE, log, save

#: laptop 64x64 (4096-point t-SNE frames) and the paper preset (about 3 s per
#: step here) take many minutes on two cores: left out by default.
COMBOS = [("laptop", 16), ("laptop", 32), ("paper-ttt", 32)]
QUICK = [("laptop", 16), ("laptop", 32)]


def film_once(preset: str, grid: int, iters: int = 250, loss: str = "grid", device: str = "cpu"):
    """Returns (timings dict, the finished film)."""
    from apm_viz.film import IslandsFilm
    from apm_viz.images import load_image
    from apm_viz.pipeline import encode
    from apm_viz.teachers import create_teacher
    from apm_viz.ttt import recommended

    t0 = time.perf_counter()
    tch = create_teacher("dinov2-small", weights="random", device=device)
    t_build = time.perf_counter() - t0
    out = encode(load_image(SAMPLE), tch, grid)
    t_teacher = time.perf_counter() - t0
    t1 = time.perf_counter()
    film = IslandsFilm(out, recommended(loss, preset=preset, iters=iters, device=device))
    first = None
    while not film.done:
        film.advance(budget=0.6)
        if first is None and film.frames >= 1:
            first = time.perf_counter() - t1
    t_film = time.perf_counter() - t1
    run = film.run
    row = {"preset": preset, "grid": grid, "iters": iters, "loss": loss, "snapshots": len(run.snapshots),
           "teacher_build_s": t_build, "teacher_total_s": t_teacher, "film_s": t_film,
           "total_s": t_teacher + t_film, "ttt_s": run.seconds, "projection_s": t_film - run.seconds,
           "first_frame_s": first, "first_frame_cold_s": t_teacher + first, "status": run.status,
           "loss_drop": run.loss_drop()}
    return row, film


def bench(combos, iters: int = 250) -> tuple[list[dict], dict]:
    rows, films = [], {}
    for preset, grid in combos:
        row, film = film_once(preset, grid, iters)
        rows.append(row)
        films[(preset, grid)] = film
        log(f"film {preset:9s} {grid}x{grid}: total {row['total_s']:6.1f} s (teacher {row['teacher_total_s']:.1f}, "
            f"TTT {row['ttt_s']:.1f}, frames {row['projection_s']:.1f}); first frame {row['first_frame_s']:.1f} s "
            f"warm, {row['first_frame_cold_s']:.1f} s cold")
    return rows, films


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--iters", type=int, default=250)
    a = p.parse_args(argv)
    rows, _ = bench(QUICK if a.quick else COMBOS, a.iters)
    save("film", rows)


if __name__ == "__main__":
    main()
