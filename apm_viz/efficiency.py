"""The paper's Fig. 2 on this machine: how long the APM takes to produce its
whole field when it processes `chunk` locations at once, against one forward
pass of the teacher (a ViT) on the same image.

Every location is an independent query of the same MLP ("a patch is a
batch"), so the field can be computed `chunk` locations at a time; fewer at
once means more sequential passes. A ViT has no such choice: its patches
attend to each other, so it always sees the whole image.

Only speed is measured here, so the APM keeps its random initial weights.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from .model import APM, count_parameters, get_preset
from .seeding import seeded
from .teachers import Teacher

#: Locations processed at once, as in the paper's Fig. 2 (None: the whole grid).
DEFAULT_CHUNKS: tuple[Optional[int], ...] = (1, 7, 14, 28, 56, 112, 224, None)

#: The paper's Fig. 2, approximately, as its text states it: measured on a GPU
#: with CLIP ViT-B/16 at 224 px. Only the end points of the APM curve are given.
PAPER_FIG2 = {
    "apm": [(7, 1.4), (224, 0.01)],
    "vit_b16_seconds": 2.2,
    "note": "paper, Fig. 2: GPU, CLIP ViT-B/16 at 224 px (approximate, end points only)",
}


@dataclass
class FieldTiming:
    """Seconds for the whole field at one chunk size.

    chunk: locations per pass (the grid's N for "all at once").
    seconds: median over repeats of the time for all N locations.
    chunks_timed, chunks_total: passes actually timed per repeat and passes the
        whole field needs; when fewer were timed (tiny chunks on a slow
        machine) `seconds` is per-pass time x chunks_total, since every pass
        is the same MLP on the same number of locations.
    """

    chunk: int
    seconds: float
    chunks_timed: int
    chunks_total: int

    @property
    def extrapolated(self) -> bool:
        return self.chunks_timed < self.chunks_total


@dataclass
class Fig2Result:
    """One Fig. 2 measurement.

    field: one FieldTiming per chunk size, in the order asked.
    teacher_seconds: median time of one teacher forward of the same image.
    """

    preset: str
    grid: int
    locations: int
    apm_parameters: int
    macs_per_location: int
    teacher: str
    teacher_parameters: int
    device: str
    threads: int
    repeats: int
    field: list[FieldTiming] = field(default_factory=list)
    teacher_seconds: float = float("nan")

    def rows(self) -> list[dict]:
        """Plain rows for a table: chunk, seconds, speed-up over the teacher."""
        return [{"locations at once": t.chunk, "APM field (s)": t.seconds,
                 "teacher forward (s)": self.teacher_seconds,
                 "teacher / APM": self.teacher_seconds / t.seconds if t.seconds > 0 else float("inf"),
                 "extrapolated": t.extrapolated} for t in self.field]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _median_time(fn: Callable[[], None], repeats: int, device: str) -> float:
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure_fig2(teacher: Teacher, image: np.ndarray, preset: str = "paper-ttt",
                 chunks: Sequence[Optional[int]] = DEFAULT_CHUNKS, repeats: int = 3,
                 budget: float = 2.0, progress: Optional[Callable[[float, str], None]] = None,
                 device: Optional[str] = None) -> Fig2Result:
    """Time the APM's whole field per chunk size and one teacher forward.

    teacher: a `Teacher` of the registry (its device is used unless `device` is given).
    image: (S, S, 3) float in [0, 1], S a multiple of the teacher's patch p; the grid is S/p.
    chunks: locations per pass; None or anything >= N means all at once.
    budget: seconds one repeat of one chunk size may take; beyond that only
        as many passes as fit are timed and the total is scaled up (see
        `FieldTiming`). Small budgets keep tiny chunks of big presets bearable.
    progress: called with (fraction done, what is being timed).
    Returns a `Fig2Result`.
    """
    s, p = image.shape[0], teacher.patch
    if image.ndim != 3 or image.shape != (s, s, 3) or s % p:
        raise ValueError(f"image must be (S, S, 3) with S a multiple of {p}, got {image.shape}")
    device = device or teacher.device
    grid = s // p
    n = grid * grid
    report = progress or (lambda f, what: None)
    with seeded(0):
        model = APM(get_preset(preset, patch=p), (grid, grid), teacher.dim).to(device).eval()
    x = teacher.normalisation.tensor(image).to(device)  # the APM folds what the teacher sees
    result = Fig2Result(preset=preset, grid=grid, locations=n, apm_parameters=count_parameters(model),
                        macs_per_location=model.flops_per_location(), teacher=teacher.name,
                        teacher_parameters=count_parameters(teacher.model), device=device,
                        threads=torch.get_num_threads(), repeats=repeats)
    steps = len(chunks) + 1
    with torch.inference_mode():
        report(0.0, "teacher forward")
        teacher.model.to(device)
        teacher.forward(x)  # warm-up
        result.teacher_seconds = _median_time(lambda: teacher.forward(x), repeats, device)
        T = model.fold(x)
        pos = model.grid_pos
        for i, chunk in enumerate(chunks, start=1):
            size = n if chunk is None or chunk >= n else int(chunk)
            report(i / steps, f"APM field, {size} location{'s' if size > 1 else ''} at once")
            total = -(-n // size)
            # Warm-up and a first estimate of one pass.
            first = _median_time(lambda: model.unfold(T, pos[:size], with_rgb=False), 1, device)
            timed = total if first * total <= budget else max(1, min(total, int(budget / max(first, 1e-9))))

            def passes(timed=timed, size=size):
                for start in range(0, timed * size, size):
                    model.unfold(T, pos[start : start + size], with_rgb=False)

            per_repeat = _median_time(passes, repeats, device)
            result.field.append(FieldTiming(chunk=size, seconds=per_repeat * total / timed, chunks_timed=timed,
                                            chunks_total=total))
    report(1.0, "done")
    return result
