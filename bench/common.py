"""Shared helpers for the benchmarks: timing with medians, plain matmul FLOP/s,
the machine, a small teacher cache, and the results file."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # benchmarks never wait for the network

import torch  # noqa: E402

SAMPLE = ROOT / "assets" / "chelsea.jpg"
RESULTS = ROOT / "bench" / "results.json"


def sync(device: str = "cpu") -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timeit(fn: Callable[[], object], repeats: int = 3, warmup: int = 1, device: str = "cpu") -> list[float]:
    """Seconds of each of `repeats` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t)
    return out


def median(xs) -> float:
    return float(statistics.median(xs))


def matmul_flops(n: int = 2048, repeats: int = 5, device: str = "cpu", dtype=torch.float32) -> float:
    """FLOP/s of a plain n x n x n matrix product (median of `repeats`)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / median(timeit(lambda: a @ b, repeats, 2, device))


def machine() -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "platform": platform.platform()}
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        info["load_average_at_start"] = os.getloadavg()
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


_TEACHERS: dict = {}


def teacher(name: str = "dinov2-small", device: str = "cpu"):
    """A full-size DINOv2 teacher with random weights (no download): timing only."""
    from apm_viz.teachers import create_teacher

    key = (name, device)
    if key not in _TEACHERS:
        _TEACHERS[key] = create_teacher(name, weights="random", device=device)
    return _TEACHERS[key]


def save(section: str, payload, path: Path = RESULTS) -> None:
    data = json.loads(path.read_text()) if path.exists() else {}
    data[section] = payload
    data.setdefault("machine", machine())
    path.write_text(json.dumps(data, indent=2, default=float))


def log(msg: str) -> None:
    print(msg, flush=True)
