"""The paper's Fig. 2 on this machine: the APM's whole field against the
number of locations processed at once, beside a DINOv2 forward of the same
image (apm_viz.efficiency.measure_fig2, the same code the Efficiency page runs).

    python bench/bench_fig2.py [--grid 16] [--device cuda]
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from common import SAMPLE, log, save, teacher

PRESETS = ("laptop", "paper-ttt", "paper")
TEACHERS = ("dinov2-small", "dinov2-base")


def bench(grid: int = 16, presets=PRESETS, teachers=TEACHERS, device: str = "cpu", budget: float = 2.0,
          repeats: int = 3) -> list[dict]:
    from apm_viz.efficiency import measure_fig2
    from apm_viz.images import load_image, to_array

    rows = []
    for tname in teachers:
        t = teacher(tname, device)
        image = to_array(load_image(SAMPLE).image, t.pixels(grid))
        for preset in presets:
            r = measure_fig2(t, image, preset, repeats=repeats, budget=budget, device=device)
            d = asdict(r)
            d["extrapolated"] = [t.extrapolated for t in r.field]
            rows.append(d)
            curve = ", ".join(f"{t.chunk}:{t.seconds:.3g}{'*' if t.extrapolated else ''}" for t in r.field)
            log(f"fig2 {preset:9s} vs {tname} ({r.teacher_seconds:.3f} s), {grid}x{grid} on {device}: {curve}")
    return rows


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--grid", type=int, default=16)
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    save("fig2", bench(a.grid, device=a.device))


if __name__ == "__main__":
    main()
