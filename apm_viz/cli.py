"""Command line: `python -m apm_viz islands IMAGE --out DIR ...` (and `apm-viz`).

Bad input exits with status 2 and one line `error: ...` on stderr.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

from .cli_classify import COMMANDS as CLASSIFY_COMMANDS, add_commands as add_classify_commands
from .cli_scale import COMMANDS as SCALE_COMMANDS, add_commands as add_scale_commands
from .errors import ApmVizError
from .islands import DEFAULT_MIN_SIZE, DEFAULT_TAU
from .model import PRESETS
from .teachers import DEFAULT_TEACHER, TEACHERS


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, status 2, like every other bad input
        self.exit(2, f"error: {message}\n")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    from .recipes import LOSS_CHOICES, QUERIES, QUERY_CAN_SHOW, RECIPES

    p.add_argument("--recipe", choices=RECIPES, default="aligned",
                   help="aligned (default): this project's settings and aligned openTSNE frames; authors: the "
                        "authors' code (query [T | p], N(0, 0.01) init, Adam 1e-4 x0.1 every 200, 1200 iterations, "
                        "attention pooling with 8 heads, scikit-learn t-SNE with perplexity 3 per frame)")
    p.add_argument("--iters", type=int, default=None, help="TTT iterations (default: the recipe's, 250 or 1200)")
    p.add_argument("--grid", type=int, choices=(16, 32, 64), default=32,
                   help="patch grid; pixels = grid x the teacher's patch: 16 is 224 px at patch 14, 256 at patch 16")
    p.add_argument("--preset", choices=sorted(PRESETS), default="laptop", help="APM sizes (default laptop)")
    p.add_argument("--loss", choices=LOSS_CHOICES, default="auto",
                   help="what is supervised (default auto = token, the paper's islands experiment, for every "
                        "teacher and weight source)")
    p.add_argument("--query", choices=("auto", *QUERIES), default="auto",
                   help="what each location reads; auto: the recipe's. figure: " + QUERY_CAN_SHOW["figure"]
                        + " authors: " + QUERY_CAN_SHOW["authors"])
    g = p.add_argument_group("advanced (default: the recipe's)")
    g.add_argument("--pooling", choices=("mean", "attention"), default=None,
                   help="how the field is pooled to the global output (attention: 8 heads)")
    g.add_argument("--init-std", type=float, default=None,
                   help="draw the APM's weights from N(0, STD) (the authors: 0.01); 0 keeps PyTorch's default init")
    g.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-4; 1e-3 with the grid)")
    g.add_argument("--lr-step", type=int, default=None,
                   help="multiply the learning rate by 0.1 every N iterations (the authors: 200); 0: constant")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--teacher", choices=list(TEACHERS), default=DEFAULT_TEACHER, metavar="NAME",
                   help=f"the teacher (default {DEFAULT_TEACHER}; `teachers` lists them)")
    p.add_argument("--weights", default=None, help="local teacher weights file (.safetensors or .pth; timm's or "
                                                   "the publisher's key names)")
    p.add_argument("--offline", action="store_true", help="never try to download weights")
    p.add_argument("--projection", choices=("tsne", "pca", "sklearn-tsne"), default=None,
                   help="tsne: aligned openTSNE; sklearn-tsne: every frame on its own (the authors'); "
                        "default: the recipe's")
    p.add_argument("--perplexity", type=float, default=None, help="t-SNE perplexity (default: 30, the authors' 3)")
    p.add_argument("--components", type=int, choices=(3, 1), default=3,
                   help="projection components: 3 (RGB maps) or 1 (grayscale maps, the authors' 1-D variant)")
    p.add_argument("--tau", type=float, default=DEFAULT_TAU, help="agreement threshold for island counts")
    p.add_argument("--min-size", type=int, default=DEFAULT_MIN_SIZE, help="smallest island counted")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="apm-viz", description="Islands of agreement with an Asynchronous Perception Machine.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("islands", help="overfit an APM on one image and write its islands over iterations")
    p.add_argument("image", help="an image file (PNG, JPEG, WebP, BMP, TIFF, GIF)")
    p.add_argument("--out", required=True, help="output folder")
    _add_run_options(p)
    p = sub.add_parser("export", help="run the islands experiment on an image and write a talk bundle "
                                      "(figures as PNG/SVG/PDF, animations, metrics, manifest)")
    p.add_argument("image", help="an image file (PNG, JPEG, WebP, BMP, TIFF, GIF)")
    p.add_argument("--out", required=True, help="output folder (gets IMAGE-talk.zip and the same files unpacked)")
    _add_run_options(p)
    _add_export_options(p)
    p = sub.add_parser("reproduce", help="recompute a run from a talk bundle or its manifest.json and write "
                                         "the same figures")
    p.add_argument("bundle", help="a talk bundle (.zip) or its manifest.json")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--image", default=None, help="the image, where the bundle does not hold it")
    p.add_argument("--weights", default=None, help="the teacher's weights file, where it moved")
    add_classify_commands(sub)
    add_scale_commands(sub, _add_run_options)
    sub.add_parser("teachers", help="list the teachers: family, patch size, width, pixels per grid, "
                                    "and whether weights are on this machine")
    return parser


def _add_export_options(p: argparse.ArgumentParser) -> None:
    from .export import ENGINES
    from .figures.style import STYLES
    from .render import ANIMATION_FORMATS, FORMATS

    g = p.add_argument_group("export")
    g.add_argument("--style", choices=sorted(STYLES), default="light", help="slide background (default light)")
    g.add_argument("--dpi", type=int, default=200, help="PNG resolution (default 200)")
    g.add_argument("--width-px", type=int, default=None, help="PNG width in pixels (overrides --dpi)")
    g.add_argument("--frame", type=int, default=None, help="iteration of the per-frame figures (default: the last)")
    g.add_argument("--azimuth", type=float, default=45.0, help="3-D camera azimuth in degrees")
    g.add_argument("--elevation", type=float, default=25.0, help="3-D camera elevation in degrees")
    g.add_argument("--rotate", action="store_true", help="turn the 3-D animation once around")
    g.add_argument("--engine", choices=ENGINES, default="auto",
                   help="auto: kaleido for the app's plotly figures when a Chromium exists, else matplotlib")
    g.add_argument("--formats", default=",".join(FORMATS), help="figure formats (default png,svg,pdf)")
    g.add_argument("--animations", default=",".join(ANIMATION_FORMATS),
                   help="animation formats (default gif,mp4; 'none' for none)")


def run_options(**values) -> argparse.Namespace:
    """The options of an islands run (`apm-viz islands`) with the command
    line's defaults, `values` in their place (the Python entry point's
    keywords, by the options' names: grid, iters, loss, recipe, ...)."""
    p = _Parser(add_help=False)
    _add_run_options(p)
    args = p.parse_args([])
    unknown = sorted(set(values) - set(vars(args)))
    if unknown:
        raise ApmVizError(f"unknown option {', '.join(unknown)}; the options are {', '.join(sorted(vars(args)))}")
    vars(args).update(values)
    return args


def settings_from_args(args) -> "Settings":
    from .pipeline import Settings
    from .recipes import islands_config, islands_projection

    if args.iters is not None and args.iters < 1:
        raise ApmVizError("--iters must be at least 1")
    if args.init_std is not None and args.init_std < 0:
        raise ApmVizError("--init-std must be positive (or 0 for PyTorch's default init)")
    if args.lr_step is not None and args.lr_step < 0:
        raise ApmVizError("--lr-step must be a number of iterations (0: constant)")
    if args.components == 1 and args.projection == "tsne":
        raise ApmVizError("--components 1 needs --projection sklearn-tsne or pca (aligned frames are 2-D or 3-D)")
    overrides = dict(preset=args.preset, iters=args.iters, lr=args.lr, seed=args.seed, pooling=args.pooling)
    ttt = islands_config(args.loss, args.query, args.recipe, **overrides)
    if args.init_std is not None or args.lr_step is not None:  # 0 means "none": PyTorch's init, a constant lr
        ttt = replace(ttt, **({} if args.init_std is None else {"init_std": args.init_std or None}),
                      **({} if args.lr_step is None else {"lr_step": args.lr_step or None}))
    method = args.projection
    if args.components == 1 and method is None and args.recipe == "aligned":
        method = "pca"
    proj = islands_projection(args.recipe, dims=args.components, seed=args.seed, method=method,
                              perplexity=args.perplexity)
    return Settings(grid=args.grid, teacher=args.teacher, weights=args.weights, allow_download=not args.offline,
                    ttt=ttt, projection=proj, tau=args.tau, min_size=args.min_size, recipe=args.recipe)


def _progress_printer():
    def progress(run):
        i, loss = run.losses[-1]
        print(f"\r  iteration {i:4d}/{run.config.iters}  loss {loss:.3e}", end="", file=sys.stderr, flush=True)
        if run.finished:
            print(file=sys.stderr)
    return progress


def cmd_islands(args) -> int:
    from .export import summary_lines
    from .pipeline import compute, write_outputs

    settings = settings_from_args(args)
    result = compute(args.image, settings, progress=_progress_printer(), log=_log)
    if result.teacher.weights.warning:
        print(f"warning: {result.teacher.weights.warning}", file=sys.stderr)
    written = write_outputs(result, Path(args.out))
    print("; ".join(summary_lines(result)) + f"; wrote {len(written)} files to {args.out}")
    return 0 if result.run.status in ("done", "cancelled") else 1


def _export_options(args):
    from .export import ExportOptions

    def formats(text):
        return tuple(f.strip().lower() for f in text.split(",") if f.strip() and f.strip().lower() != "none")

    return ExportOptions(style=args.style, dpi=args.dpi, width_px=args.width_px, frame=args.frame,
                         azimuth=args.azimuth, elevation=args.elevation, rotate=args.rotate, engine=args.engine,
                         formats=formats(args.formats), animations=formats(args.animations))


def _log(s: str) -> None:
    print(s, file=sys.stderr)


def cmd_export(args) -> int:
    from .export import summary_lines, write_bundle
    from .figures.islands import Talk
    from .images import load_image
    from .pipeline import compute

    options = _export_options(args)  # bad options fail before the run, not after
    settings = settings_from_args(args)
    image = load_image(args.image)
    result = compute(image, settings, progress=_progress_printer(), log=_log)
    if result.teacher.weights.warning:
        _log(f"warning: {result.teacher.weights.warning}")
    talk = Talk.from_result(result, image_bytes=Path(args.image).read_bytes())
    zpath = write_bundle(talk, Path(args.out), options, progress=lambda s: _log(f"  writing {s}"))
    _print_notes(zpath)
    print("; ".join(summary_lines(result)) + f"; wrote {zpath} and {zpath.with_suffix('')}/")
    return 0 if result.run.status in ("done", "cancelled") else 1


def _print_notes(zpath: Path) -> None:
    import json
    import zipfile

    with zipfile.ZipFile(zpath) as z:
        man = json.loads(z.read(next(n for n in z.namelist() if n.endswith("/manifest.json"))))
    for note in man.get("export", {}).get("notes", []):
        _log(f"note: {note}")


def cmd_reproduce(args) -> int:
    from .errors import ApmVizError
    from .export import (ExportOptions, check_weights, compare_metrics, files_report, read_bundle,
                         reproduce_settings, summary_lines, write_bundle)
    from .figures.islands import Talk
    from .images import load_image
    from .pipeline import compute, metrics

    bundle = read_bundle(args.bundle)
    man = bundle.manifest
    name = man.get("image", {}).get("name") or "image"
    if args.image:
        data = Path(args.image).read_bytes() if Path(args.image).is_file() else None
        if data is None:
            raise ApmVizError(f"no such image file: {args.image}")
    elif bundle.image_bytes is not None:
        data = bundle.image_bytes
    else:
        raise ApmVizError(f"{Path(args.bundle).name} holds no image; name it with --image")
    image = load_image(data, name=name)
    wanted = {man.get("image", {}).get("sha256"), man.get("input_file_sha256")} - {None}
    if wanted and image.sha256 not in wanted:
        _log(f"warning: the image differs from the one the bundle was made from (sha256 {image.sha256[:12]}…)")
    settings = reproduce_settings(bundle, args.weights)
    options = ExportOptions.from_dict(man.get("export", {}).get("options", {}))
    result = compute(image, settings, progress=_progress_printer(), log=_log)
    check_weights(bundle, result)
    talk = Talk.from_result(result, image_bytes=data)
    zpath = write_bundle(talk, Path(args.out), options, progress=lambda s: _log(f"  writing {s}"))
    print("; ".join(summary_lines(result)) + f"; wrote {zpath} and {zpath.with_suffix('')}/")
    if bundle.metrics is None:
        print("the bundle holds no metrics.json to compare with")
        return 0
    diffs = compare_metrics(bundle.metrics, metrics(result))
    folder = zpath.with_suffix("")
    files = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    same, total = files_report(bundle, files)
    if diffs:
        for d in diffs:
            print(f"differs: {d}")
        return 1
    print(f"reproduced: the same loss and island counts; {same} of {total} figure and animation files "
          "byte-identical")
    return 0


def cmd_teachers(args) -> int:
    from .teachers import describe

    rows = [("name", "family", "patch", "width", "prefix", "grid 16", "grid 32", "global", "weights here", "timm model")]
    for name in TEACHERS:
        info = describe(name)
        c = info.config
        rows.append((name, c.family_info.name, str(info.patch), str(info.dim), str(info.prefix_tokens),
                     f"{info.pixels(16)} px", f"{info.pixels(32)} px",
                     "MAP head" if c.family_info.global_vector == "map" else "class token",
                     info.local or "no", c.timm_name))
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    print("weights: a file you name (--weights), the publisher's file in the weights folder, the Hugging Face "
          "cache, the hub when it answers; DINOv3's are gated (download Meta's .pth after accepting its licence)")
    return 0


COMMANDS = {"islands": cmd_islands, "export": cmd_export, "reproduce": cmd_reproduce, "teachers": cmd_teachers,
            **CLASSIFY_COMMANDS, **SCALE_COMMANDS}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ApmVizError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
