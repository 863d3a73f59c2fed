"""`evaluate` throughput in process against `--ray local`, and what one image costs at each preset.

    python bench/bench_ray.py [--images 8] [--quick]

Throughput: the same generated images (clean), a random-init CLIP ViT-B/16 (its speed is the
pretrained model's), the laptop recipe (250 iterations), evaluated by `evaluate.run` in this
process (torch's threads: every core) and on a local Ray (one worker per core, one thread each).
Both times include building the worker(s): CLIP and the text classifier (read from the text cache,
warmed before either run). Starting and stopping Ray are timed apart.

Per image, on one core (one torch thread, as each `--ray local` worker has): `evaluate_item` on one
image at two iteration counts gives a fixed cost (CLIP encode,
preprocessing, the trainer's setup) and a cost per iteration, extrapolated to each recipe's length
(laptop 250; paper-ttt and paper 1200, the authors' recipe). FLOPs: CLIP's image forward and one
TTT step (forward + backward) as torch's FlopCounterMode counts them; the GPU time is an estimate
from those counts and `ASSUMED_FLOPS`, not a measurement.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from common import log, save

#: Achieved fp32 throughput assumed for the GPU estimate (an assumption, not a measurement).
ASSUMED_FLOPS = 20e12
#: Assumed shortest TTT step on a GPU, whatever its FLOPs (kernel launches of a small MLP).
ASSUMED_MIN_STEP_S = 1e-3
IMAGENET_C_SEVERITY_5 = 50_000 * 15
RECIPE_ITERS = {"laptop": 250, "paper-ttt": 1200, "paper": 1200}


def _pictures(root: Path, n: int) -> Path:
    for i in range(n):
        c = ("cat", "ship")[i % 2]
        (root / c).mkdir(parents=True, exist_ok=True)
        rgb = (np.random.RandomState(i).rand(256, 256, 3) * 255).astype(np.uint8)
        Image.fromarray(rgb).save(root / c / f"{i}.png")
    return root


def _settings(clip: str, preset: str, iters: int):
    from apm_viz.classify import recipe
    from apm_viz.evaluate import EvalSettings

    name = "laptop" if preset == "laptop" else "paper"
    return EvalSettings(clip=clip, weights="random", allow_download=False, labels="cifar10", templates="single",
                        ttt=recipe(name, iters=iters, preset=preset))


def throughput(n_images: int, iters: int = 250) -> dict:
    from apm_viz import evaluate
    from apm_viz.ray_runner import RayOptions, RayRunner, connect
    import ray

    settings = _settings("vit-b-16-openai", "laptop", iters)
    with tempfile.TemporaryDirectory() as tmp:
        root = _pictures(Path(tmp) / "set", n_images)
        evaluate.worker_for(settings)  # the text cache, for both runs
        evaluate._WORKERS.clear()
        t = time.perf_counter()
        evaluate.run(root, settings, Path(tmp) / "here", ["clean"], [0])
        here = time.perf_counter() - t
        evaluate._WORKERS.clear()
        t = time.perf_counter()
        connect("local")
        start = time.perf_counter() - t
        runner = RayRunner(RayOptions(address=None))
        t = time.perf_counter()
        evaluate.run(root, settings, Path(tmp) / "there", ["clean"], [0], runner=runner)
        there = time.perf_counter() - t
        workers = len(set(runner.ran_on.values()))
        t = time.perf_counter()
        ray.shutdown()
        stop = time.perf_counter() - t
    res = {"images": n_images, "iters": iters, "clip": settings.clip, "in_process_s": here,
           "in_process_images_per_s": n_images / here, "ray_s": there, "ray_images_per_s": n_images / there,
           "ray_workers": workers, "ray_start_s": start, "ray_stop_s": stop,
           "ray_over_in_process": (n_images / there) / (n_images / here)}
    log(f"evaluate, {n_images} images, laptop {iters} iterations: in process {here:.1f} s "
        f"({res['in_process_images_per_s']:.3f} images/s), --ray local {there:.1f} s on {workers} workers "
        f"({res['ray_images_per_s']:.3f} images/s; Ray start {start:.1f} s, stop {stop:.1f} s) -> "
        f"{res['ray_over_in_process']:.2f}x")
    return res


def per_image(clip: str, preset: str, k1: int, k2: int) -> dict:
    """Fixed and per-iteration seconds of one image on one thread, FLOPs, and the GPU estimate."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _per_image(clip, preset, k1, k2)
    finally:
        torch.set_num_threads(threads)


def _per_image(clip: str, preset: str, k1: int, k2: int) -> dict:
    from apm_viz import evaluate
    from apm_viz.classify import ClassifyTTT, prepare
    from apm_viz.images import load_image

    with tempfile.TemporaryDirectory() as tmp:
        root = _pictures(Path(tmp) / "set", 1)
        s1 = _settings(clip, preset, k1)
        _, items = evaluate.plan(root, s1, ["clean"], [0])
        worker = evaluate.worker_for(s1)
        evaluate.evaluate_item(items[0], _settings(clip, preset, 1), worker)  # warm-up
        times = {}
        for k in (k1, k2):
            t = time.perf_counter()
            row = evaluate.evaluate_item(items[0], _settings(clip, preset, k), worker)
            times[k] = time.perf_counter() - t
            assert "error" not in row, row
        clip_image, _ = prepare(load_image(items[0].path), worker.clip)
        with FlopCounterMode(display=False) as fc:
            view = worker.clip.encode(clip_image)
        clip_flops = fc.get_total_flops()
        c = ClassifyTTT(view, worker.classifier, _settings(clip, preset, 2).ttt)
        c.step(1)
        with FlopCounterMode(display=False) as fc:
            c.step(1)
        step_flops = fc.get_total_flops()
    per_iter = (times[k2] - times[k1]) / (k2 - k1)
    fixed = max(times[k1] - k1 * per_iter, 0.0)
    n = RECIPE_ITERS[preset]
    gpu = clip_flops / ASSUMED_FLOPS + n * max(step_flops / ASSUMED_FLOPS, ASSUMED_MIN_STEP_S)
    res = {"clip": clip, "preset": preset, "iters_measured": [k1, k2], "seconds": times, "fixed_s": fixed,
           "per_iteration_s": per_iter, "recipe_iters": n, "cpu_image_s": fixed + n * per_iter,
           "extrapolated": k2 < n, "clip_gflops": clip_flops / 1e9, "step_gflops": step_flops / 1e9,
           "image_gflops": (clip_flops + n * step_flops) / 1e9, "gpu_image_s_estimate": gpu,
           "imagenet_c_sev5_gpu_hours_estimate": IMAGENET_C_SEVERITY_5 * gpu / 3600}
    log(f"one image, {clip}, {preset}: fixed {fixed:.2f} s + {per_iter * 1e3:.1f} ms/iteration (measured at "
        f"{k1} and {k2}) -> {res['cpu_image_s']:.1f} s at {n} iterations on this CPU; {res['step_gflops']:.2f} "
        f"GFLOP/step, CLIP {res['clip_gflops']:.1f} GFLOP -> GPU estimate {gpu:.3f} s/image, ImageNet-C sev 5 "
        f"{res['imagenet_c_sev5_gpu_hours_estimate']:.0f} GPU-hours")
    return res


#: (CLIP, preset, the two iteration counts measured); ViT-L/14 is the authors' TTT teacher.
COSTS = [("vit-b-16-openai", "laptop", 10, 40), ("vit-b-16-openai", "paper-ttt", 2, 6),
         ("vit-b-16-openai", "paper", 2, 4), ("vit-l-14-openai", "laptop", 10, 40),
         ("vit-l-14-openai", "paper-ttt", 2, 6), ("vit-l-14-openai", "paper", 2, 4)]


def bench(quick: bool = False, images: int = 8, iters: int = 250) -> dict:
    from apm_viz import evaluate

    res = {"throughput": throughput(4 if quick else images, iters)}
    evaluate._WORKERS.clear()
    res["per_image"] = [per_image(*c) for c in (COSTS[:2] if quick else COSTS)]
    res.update(assumed_gpu_flops=ASSUMED_FLOPS, assumed_min_step_s=ASSUMED_MIN_STEP_S)
    return res


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--iters", type=int, default=250, help="TTT iterations of the throughput run (laptop recipe)")
    a = p.parse_args(argv)
    res = bench(a.quick, a.images, a.iters)
    save("ray", res)
    return res


if __name__ == "__main__":
    main()
