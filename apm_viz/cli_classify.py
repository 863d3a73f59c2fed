"""Command line for test-time classification: `classify IMAGE` and `evaluate DATASET`.

    python -m apm_viz classify IMAGE --labels cifar10|imagenet|FILE [--corruption NAME --severity S]
        [--clip NAME] [--iters N] --out DIR
    python -m apm_viz evaluate DATASET --labels ... [--corruption NAME|all --severity S] [--iters N] --out DIR
        [--ray local|auto|HOST:PORT|ray://HOST:PORT --cpus-per-task C --gpus-per-task F]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli_scale import add_ray_options, ray_device, runner_from_args
from .clip import CLIP_MODELS, DEFAULT_CLIP
from .errors import ApmVizError
from .labels import TEMPLATE_SETS
from .model import PRESETS


def _log(s: str) -> None:
    print(s, file=sys.stderr)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--labels", required=True, help="cifar10, imagenet, or a text file with one label per line")
    p.add_argument("--clip", choices=sorted(CLIP_MODELS), default=DEFAULT_CLIP,
                   help=f"CLIP teacher (default {DEFAULT_CLIP}; 'tiny' is a small random-init model for tests)")
    p.add_argument("--weights", default=None, help="local CLIP weights file (open_clip keys, .safetensors or .bin)")
    p.add_argument("--offline", action="store_true", help="never try to download weights")
    p.add_argument("--templates", choices=TEMPLATE_SETS, default="openai",
                   help="prompt templates averaged per class (default openai: the 80 of the CLIP paper)")
    p.add_argument("--recipe", choices=("laptop", "paper"), default="laptop",
                   help="TTT settings: laptop (small APM, 250 iterations) or paper (the authors' classification "
                        "recipe: TTT MLP, N(0, 0.01) init, Adam 1e-4 with StepLR(200, 0.1), 1200 iterations)")
    p.add_argument("--iters", type=int, default=None, help="TTT iterations (default: the recipe's)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None, help="APM sizes (default: the recipe's)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the recipe's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--severity", default="5", help="ImageNet-C severity 1-5 (evaluate: also a comma list or all)")
    p.add_argument("--out", required=True, help="output folder")


def add_commands(sub) -> None:
    """Add `classify` and `evaluate` to the CLI's subparsers (handlers in `COMMANDS`)."""
    p = sub.add_parser("classify", help="CLIP zero-shot and APM test-time classification of one image")
    p.add_argument("image", help="an image file (PNG, JPEG, WebP, BMP, TIFF, GIF)")
    p.add_argument("--corruption", default="clean", help="an ImageNet-C corruption name (default clean)")
    _common(p)
    p = sub.add_parser("evaluate", help="zero-shot against APM top-1 over a labelled folder or CSV, per corruption "
                                        "(resumable; writes results.jsonl, summary.json, summary.md)")
    p.add_argument("dataset", help="an ImageFolder tree (class folders named by label), a CSV of path,label, or an "
                                   "ImageNet-C tree (corruption/severity/class/image, read without corrupting again)")
    p.add_argument("--corruption", default="clean",
                   help="clean (default), all, a group (noise, blur, weather, digital), a name, or a comma list")
    p.add_argument("--per-class", type=int, default=None, help="at most N images of each class (a quick subset)")
    _common(p)
    add_ray_options(p)


def _device(text: str) -> str:
    import torch

    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text.startswith("cuda") and not torch.cuda.is_available():
        raise ApmVizError(f"--device {text}: no CUDA device here")
    if text != "cpu" and not text.startswith("cuda"):
        raise ApmVizError(f"--device must be cpu, cuda, cuda:N or auto, got {text!r}")
    return text


def _ttt(args):
    from .classify import recipe

    if args.iters is not None and args.iters < 1:
        raise ApmVizError("--iters must be at least 1")
    on_ray = getattr(args, "ray", None) is not None
    return recipe(args.recipe, iters=args.iters, preset=args.preset, lr=args.lr, seed=args.seed,
                  device=ray_device(args.device, args.gpus_per_task) if on_ray else _device(args.device))


def _settings(args):
    from .evaluate import EvalSettings

    return EvalSettings(clip=args.clip, weights=args.weights, allow_download=not args.offline, labels=args.labels,
                        templates=args.templates, seed=args.seed, ttt=_ttt(args))


def cmd_classify(args) -> int:
    from .classify import classify_image, write_result
    from .corruptions import CLEAN, parse, parse_severities
    from .evaluate import worker_for
    from .images import load_image

    names = parse(args.corruption)
    if len(names) != 1:
        raise ApmVizError("classify takes one corruption; evaluate takes several")
    severities = parse_severities(args.severity)
    if len(severities) != 1:
        raise ApmVizError("classify takes one severity")
    settings = _settings(args)
    image = load_image(args.image)  # bad input fails before any model is built
    worker = worker_for(settings, progress=lambda d, n: print(f"\r  text classifier {d}/{n} classes", end="",
                                                              file=sys.stderr, flush=True))
    _log(f"CLIP {settings.clip}: {worker.clip.weights.label}")
    if worker.clip.weights.warning:
        _log(f"warning: {worker.clip.weights.warning}")

    def progress(result):
        i, loss = result.run.losses[-1]
        lab, p = result.apm_topk(1)[0]
        print(f"\r  iteration {i:4d}/{settings.ttt.iters}  loss {loss:.3e}  APM top-1 {lab} ({p:.2f})   ",
              end="", file=sys.stderr, flush=True)
        if result.finished:
            print(file=sys.stderr)

    result = classify_image(image, worker.clip, worker.classifier, settings.ttt, names[0],
                            severities[0] if names[0] != CLEAN else 0, seed=args.seed, progress=progress)
    path = write_result(result, settings.to_dict(), Path(args.out))
    (t_lab, t_p), (a_lab, a_p) = result.teacher_topk(1)[0], result.apm_topk(1)[0]
    print(f"CLIP zero-shot: {t_lab} ({t_p:.3f}); APM after {result.iterations - 1} iterations: {a_lab} "
          f"({a_p:.3f}); {result.applied.label}; wrote {path}")
    return 0 if result.run.status in ("done", "cancelled") else 1


def cmd_evaluate(args) -> int:
    from tqdm import tqdm

    from .corruptions import parse, parse_severities
    from .evaluate import RESULTS, run

    settings = _settings(args)
    runner = runner_from_args(args)
    corruptions, severities = parse(args.corruption), parse_severities(args.severity)
    if args.per_class is not None and args.per_class < 1:
        raise ApmVizError("--per-class must be at least 1")
    bar = None
    counts = {"teacher": 0, "apm": 0, "n": 0, "errors": 0}

    def progress(done, total, row):
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, initial=done, unit="row", file=sys.stderr, dynamic_ncols=True)
            return
        bar.update(1)
        if "error" in row:
            counts["errors"] += 1
        else:
            counts["n"] += 1
            counts["teacher"] += row["teacher_correct"]
            counts["apm"] += row["apm_correct"]
        n = max(counts["n"], 1)
        bar.set_postfix_str(f"this run: CLIP {counts['teacher'] / n:.1%}  APM {counts['apm'] / n:.1%}  "
                            f"errors {counts['errors']}")

    try:
        summary = run(args.dataset, settings, Path(args.out), corruptions, severities, progress=progress, log=_log,
                      per_class=args.per_class, runner=runner)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        print(f"error: interrupted; every finished row is kept in {Path(args.out) / RESULTS}, and running the same "
              "command again resumes", file=sys.stderr)
        return 130
    if bar is not None:
        bar.close()
    cells = summary["cells"]
    text = "; ".join(f"{c['corruption']}{'' if not c['severity'] else ' ' + str(c['severity'])}: CLIP "
                     f"{_pct(c['teacher']['top1'])} APM {_pct(c['apm']['top1'])} (n {c['n']})" for c in cells[:6])
    more = f"; … {len(cells) - 6} more" if len(cells) > 6 else ""
    print(f"{summary['rows']} rows ({summary['errors']} errors). {text}{more}; wrote {args.out}/summary.md")
    return 0


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


COMMANDS = {"classify": cmd_classify, "evaluate": cmd_evaluate}
