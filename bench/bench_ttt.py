"""TTT step time per preset and grid, and achieved FLOP/s against a plain
matmul measured right before each configuration (so both see the same load).

FLOPs are counted by torch's own FlopCounterMode over one real forward +
backward of the step (matrix products and the fold convolution), so nothing
is counted twice or guessed. A "plain MLP" step (one nn.Linear stack over the
concatenated query [T | p_xy], as a straightforward implementation would do)
is timed beside each preset at 32x32 for comparison.

    python bench/bench_ttt.py [--quick] [--device cuda]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from common import log, matmul_flops, median, save, teacher, timeit, SAMPLE

#: (preset, grid) pairs measured; paper at 64x64 (~1.2 TFLOP per step) does not
#: finish in reasonable time on two CPU cores and is left to the GPU script.
CPU_COMBOS = [("laptop", 16), ("laptop", 32), ("laptop", 64), ("paper-ttt", 16), ("paper-ttt", 32),
              ("paper-ttt", 64), ("paper", 16), ("paper", 32)]
QUICK_COMBOS = [("laptop", 32), ("paper-ttt", 32)]


def teacher_out(grid: int, device: str):
    from apm_viz.images import load_image
    from apm_viz.pipeline import encode

    return encode(load_image(SAMPLE), teacher("dinov2-small", device), grid)


def step_flops(trainer) -> int:
    """FLOPs of one forward + backward of the trainer's step, as torch counts them."""
    m = trainer.model
    with FlopCounterMode(display=False) as fc:
        feats, rgb, pooled = m(trainer.image, with_rgb="rgb" in trainer.terms)
        loss = sum(trainer.terms[k] * v for k, v in trainer._losses(feats, rgb, pooled).items())
        loss.backward()
    m.zero_grad(set_to_none=True)
    return int(fc.get_total_flops())


class PlainMLP(torch.nn.Module):
    """The straightforward APM: build every query [T | p_xy] and run nn.Linear layers."""

    def __init__(self, apm):
        super().__init__()
        c = apm.config
        widths = (apm.grid[0] * apm.grid[1] + c.pos_dim,) + tuple(c.hidden)
        layers = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        self.net = torch.nn.Sequential(*layers, torch.nn.Linear(widths[-1], apm.feature_dim))
        self.apm = apm

    def forward(self, image):
        T = self.apm.fold(image)
        pos = self.apm.grid_pos
        q = torch.cat([T.unsqueeze(1).expand(-1, pos.shape[0], -1), pos.unsqueeze(0)], dim=2)
        return self.net(q)


def plain_step_seconds(trainer, repeats: int, device: str) -> float:
    plain = PlainMLP(trainer.model).to(device)
    opt = torch.optim.Adam(plain.parameters(), lr=1e-4)
    target = trainer.target_grid

    def step():
        loss = F.mse_loss(plain(trainer.image), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return median(timeit(step, repeats, 1, device))


def bench(combos, repeats: int = 3, device: str = "cpu", loss: str = "grid", plain: bool = True) -> list[dict]:
    from apm_viz.ttt import Trainer, recommended

    rows = []
    outs = {}
    for preset, grid in combos:
        if grid not in outs:
            outs[grid] = teacher_out(grid, device)
        cfg = recommended(loss, preset=preset, iters=10_000, snapshots=(), device=device)
        trainer = Trainer(outs[grid], cfg)
        flops = step_flops(trainer)
        reps = repeats if not (preset == "paper" and grid >= 32 and device == "cpu") else 2
        n = 4096 if device.startswith("cuda") else 2048
        mm = matmul_flops(n, device=device)
        times = timeit(lambda: trainer.step(1), reps, 1, device)
        mm_after = matmul_flops(n, device=device)
        step = median(times)
        row = {"preset": preset, "grid": grid, "locations": grid * grid, "loss": loss, "device": device,
               "step_s": step, "step_times": times, "flops_per_step": flops,
               "macs_per_location": trainer.model.flops_per_location(), "achieved_flops": flops / step,
               "matmul_flops": (mm + mm_after) / 2, "matmul_before_after": [mm, mm_after]}
        row["fraction_of_matmul"] = row["achieved_flops"] / row["matmul_flops"]
        if plain and grid == 32:
            row["plain_mlp_step_s"] = plain_step_seconds(trainer, reps, device)
            row["plain_over_apm"] = row["plain_mlp_step_s"] / step
        rows.append(row)
        log(f"ttt {preset:9s} {grid}x{grid}: step {step * 1e3:8.1f} ms, {flops / 1e9:7.1f} GFLOP, "
            f"{row['achieved_flops'] / 1e9:6.1f} GFLOP/s = {row['fraction_of_matmul']:.0%} of matmul "
            f"({row['matmul_flops'] / 1e9:.0f} GFLOP/s)"
            + (f"; plain MLP step {row['plain_mlp_step_s'] * 1e3:.0f} ms" if "plain_mlp_step_s" in row else ""))
        del trainer
    return rows


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args(argv)
    rows = bench(QUICK_COMBOS if a.quick else CPU_COMBOS, a.repeats, a.device)
    save("ttt", rows)
    return rows


if __name__ == "__main__":
    main()
