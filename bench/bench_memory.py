"""Peak memory (maximum resident set size) of the command-line run, measured
on a child process with resource.getrusage.

    python bench/bench_memory.py
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time

from common import ROOT, SAMPLE, log, save

#: (preset, grid, iterations): peak memory barely depends on the iteration count
#: (snapshots are small), so the paper-sized run is kept short.
RUNS = [("laptop", 32, 250), ("paper-ttt", 32, 20)]


def peak_of(args: list[str]) -> tuple[float, float, int]:
    """(peak RSS in MiB, seconds, exit status) of `python -m apm_viz ...`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "apm_viz", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux, max over children
    if peak <= before:
        log("note: an earlier child had a higher peak; this figure is an upper bound")
    return peak / 1024, seconds, proc.returncode


def bench(runs=RUNS) -> list[dict]:
    rows = []
    for preset, grid, iters in runs:
        with tempfile.TemporaryDirectory() as out:
            mib, secs, rc = peak_of(["islands", str(SAMPLE), "--out", out, "--offline", "--preset", preset,
                                     "--grid", str(grid), "--iters", str(iters), "--loss", "grid"])
        rows.append({"preset": preset, "grid": grid, "iters": iters, "peak_rss_mib": mib, "seconds": secs,
                     "exit": rc})
        log(f"CLI {preset} {grid}x{grid} {iters} iterations: peak RSS {mib:.0f} MiB, {secs:.0f} s, exit {rc}")
    return rows


def main():
    save("memory", bench())


if __name__ == "__main__":
    main()
