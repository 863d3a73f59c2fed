"""The CUDA benchmarks, in one short run for a lent GPU: TTT step time and
FLOP/s against a plain fp32 matmul on the same card (paper and paper-ttt at
32x32 and 64x64, laptop for scale), and the Fig. 2 curve at 16x16 and 32x32.

    python bench/gpu.py [--out DIR]    (writes gpu.json there)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from common import log, machine  # noqa: E402

COMBOS = [("laptop", 32), ("paper-ttt", 32), ("paper", 32), ("laptop", 64), ("paper-ttt", 64), ("paper", 64)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=".")
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        log("no CUDA device")
        return 1
    import bench_fig2
    import bench_ttt

    t0 = time.perf_counter()
    res = {"machine": machine(), "tf32": torch.backends.cuda.matmul.allow_tf32}
    res["ttt"] = bench_ttt.bench(COMBOS, repeats=10, device="cuda")
    res["fig2"] = []
    for grid in (16, 32):
        res["fig2"] += bench_fig2.bench(grid, presets=("paper-ttt", "paper"), device="cuda", repeats=5, budget=2.0)
    res["seconds"] = time.perf_counter() - t0
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "gpu.json").write_text(json.dumps(res, indent=2, default=float))
    log(f"gpu benchmarks: {res['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
