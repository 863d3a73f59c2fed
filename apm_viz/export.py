"""Files for talks from a finished islands run (`figures.islands.Talk`): one
figure as PNG / SVG / PDF or one film as GIF / MP4 with the options chosen
(`ExportOptions`: style, resolution, frame, camera, engine), the talk bundle
(every figure and film, metrics.csv, metrics.json, manifest.json, the input
image and a README, as a folder and a zip), and reproduce: read a bundle,
remake its run from the manifest and compare.

The figures themselves are `figures.islands`; `render` turns them into
bytes. Nothing here imports streamlit.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .errors import ApmVizError
from .figures.islands import (FIGURES, PLOTLY_FIGURES, PLOTLY_PX_PER_INCH, Talk, animation_frames,
                              matplotlib_figure, plotly_figure)
from .figures.style import get_style
from .names import MIME, safe_filename, safe_stem
from .islands import islands_text
from .pipeline import IslandsResult, _json_default, manifest, metrics
from .recipes import describe
from .render import (ANIMATION_FORMATS, FORMATS, NoChromium, animation_to_bytes, find_chromium, kaleido_session,
                     matplotlib_to_bytes, plotly_to_bytes)

ENGINES = ("auto", "matplotlib", "plotly")


@dataclass(frozen=True)
class ExportOptions:
    """How figures are drawn and written.

    style: "light" or "dark". dpi: PNG resolution; width_px, when set, wins and
    fixes each PNG's width in pixels. frame: iteration of the per-frame
    figures (None: the last snapshot). azimuth, elevation: 3-D camera in
    degrees (the app's sliders). rotate: the 3-D animation turns once around.
    engine: "auto" (plotly via kaleido where the app uses plotly and a Chromium
    exists, else matplotlib), "matplotlib" or "plotly". fps: animation frames
    per second; each snapshot shows for `hold` frames.
    """

    style: str = "light"
    dpi: int = 200
    width_px: Optional[int] = None
    frame: Optional[int] = None
    azimuth: float = 45.0
    elevation: float = 25.0
    rotate: bool = False
    engine: str = "auto"
    formats: tuple[str, ...] = FORMATS
    animations: tuple[str, ...] = ANIMATION_FORMATS
    fps: int = 10
    hold: int = 4

    def __post_init__(self):
        get_style(self.style)
        if self.engine not in ENGINES:
            raise ApmVizError(f"unknown engine {self.engine!r}; choose from {', '.join(ENGINES)}")
        for f in self.formats:
            if f not in FORMATS:
                raise ApmVizError(f"unknown figure format {f!r}; choose from {', '.join(FORMATS)}")
        for f in self.animations:
            if f not in ANIMATION_FORMATS:
                raise ApmVizError(f"unknown animation format {f!r}; choose from {', '.join(ANIMATION_FORMATS)}")
        if not 20 <= self.dpi <= 1200:
            raise ApmVizError("dpi must be between 20 and 1200")
        if self.width_px is not None and not 64 <= self.width_px <= 12000:
            raise ApmVizError("width in pixels must be between 64 and 12000")

    def dpi_for(self, width_in: float) -> float:
        return self.width_px / width_in if self.width_px else float(self.dpi)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ExportOptions":
        d = {k: v for k, v in (d or {}).items() if k in cls.__dataclass_fields__}
        for k in ("formats", "animations"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


# -- one figure, one film ----------------------------------------------------------

@dataclass
class Exported:
    """One written figure: its bytes, which library drew it, and why (note)."""

    name: str
    fmt: str
    data: bytes
    engine: str
    note: str = ""

    @property
    def mime(self) -> str:
        return MIME[self.fmt]


def figure_bytes(talk: Talk, name: str, fmt: str, options: Optional[ExportOptions] = None) -> Exported:
    """One of `FIGURES` as PNG / SVG / PDF bytes.

    Plotly draws the app's plotly figures when the engine allows it and a
    Chromium exists; otherwise (and for maps, strip and 3-D) matplotlib does.
    """
    options = options or ExportOptions()
    if name not in FIGURES:
        raise ApmVizError(f"unknown figure {name!r}; choose from {', '.join(FIGURES)}")
    if fmt not in FORMATS:
        raise ApmVizError(f"unknown figure format {fmt!r}; choose from {', '.join(FORMATS)}")
    width_in = FIGURES[name][0][0]
    note = ""
    if name in PLOTLY_FIGURES and options.engine in ("auto", "plotly"):
        try:
            fig = plotly_figure(talk, name, options.style, options.frame)
            scale = options.dpi_for(width_in) / PLOTLY_PX_PER_INCH
            return Exported(name, fmt, plotly_to_bytes(fig, fmt, fig.layout.width, fig.layout.height, scale),
                            "plotly")
        except NoChromium as err:
            note = str(err)
    elif options.engine == "plotly":
        note = f"{name}: drawn with matplotlib so that its SVG and PDF are vectors"
    fig = matplotlib_figure(talk, name, options.style, options.frame, options.azimuth, options.elevation)
    dpi = options.dpi_for(fig.get_size_inches()[0])
    return Exported(name, fmt, matplotlib_to_bytes(fig, fmt, dpi), "matplotlib", note)


def film_frames(talk: Talk, name: str, options: ExportOptions) -> list[np.ndarray]:
    """The RGB frames of the film `name` ("islands" or "tsne3d") in the options' style and camera."""
    return animation_frames(talk, name, options.style, options.azimuth, options.elevation, options.rotate,
                            options.hold)


def animation_bytes(talk: Talk, name: str, fmt: str, options: Optional[ExportOptions] = None,
                    frames: Optional[list[np.ndarray]] = None) -> bytes:
    """"islands" (input beside map) or "tsne3d" as GIF or MP4 (frames: reuse ones already drawn)."""
    options = options or ExportOptions()
    if frames is None:
        frames = film_frames(talk, name, options)
    return animation_to_bytes(frames, fmt, options.fps, hold_last=1.5)


# -- metrics, manifest, bundle --------------------------------------------------------

def metrics_csv(result: IslandsResult) -> str:
    """One row per iteration: loss, each loss term, and where a snapshot was
    taken its island count and alignment (teacher share, position share)."""
    run = result.run
    terms = sorted(run.terms) if len(run.terms) > 1 else []
    by_term = {t: dict(run.terms[t]) for t in terms}
    islands = dict(result.islands)
    shares = {i: (f"{t:.6g}", f"{p:.6g}") for i, t, p in result.alignment}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["iteration", "loss", *[f"loss_{t}" for t in terms], "islands", "teacher_islands",
                "teacher_share", "position_share"])
    for i, loss in run.losses:
        w.writerow([i, repr(float(loss)), *[repr(float(by_term[t][i])) if i in by_term[t] else "" for t in terms],
                    islands.get(i, ""), result.teacher_islands if i in islands else "", *shares.get(i, ("", ""))])
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _input_file(talk: Talk) -> tuple[str, bytes]:
    img = talk.result.image
    if talk.image_bytes is not None and _sha(talk.image_bytes) == img.sha256:
        return "input/" + safe_filename(img.name, "image"), talk.image_bytes
    buf = io.BytesIO()
    img.image.save(buf, format="PNG")
    return "input/" + safe_stem(img.name, "image") + ".png", buf.getvalue()


README = """\
APM islands: a talk bundle
==========================

Image:    {image} (sha256 {sha})
Teacher:  {teacher} ({family}, patch {patch}: grid {grid}x{grid} = {px}x{px} px), weights from {source} ({detail})
Recipe:   {recipe}: {describe}
Run:      preset {preset}, loss {loss}, {iters} TTT iterations, lr {lr}, grid {grid}x{grid}, seed {seed}
Islands:  {counts} (teacher: {teacher_islands}; tau {tau}, smallest island {min_size})
Alignment at the last snapshot: teacher share {teacher_share}, position share {position_share}
          (share of the field's top 3 principal directions in the teacher grid's top-10
          subspace, and in the span of 15 smooth positional patterns)
Style:    {style}; per-frame figures at iteration {frame}; 3-D camera azimuth {az}, elevation {el}

Files
-----
figures/      {figures}
              (PNG at {dpi}; SVG and PDF are vectors except the photo itself)
animations/   {animations}
metrics.csv   loss per iteration; island counts and alignment at the snapshots
metrics.json  the same, with the settings and the weight source
manifest.json settings, seed, image hash, teacher and weight source, package versions, file hashes
input/        the image the run was made from
{notes}
Reproduce
---------
    python -m apm_viz reproduce {bundle} --out DIR

recomputes the run from manifest.json and the bundled image (same settings, same
seed), writes the same figures to DIR and compares the metrics with these.
{weights_hint}"""


def bundle_name(talk: Talk) -> str:
    return f"{safe_stem(talk.result.image.name, 'image')}-talk"


def bundle_files(talk: Talk, options: Optional[ExportOptions] = None,
                 progress: Callable[[str], None] = lambda s: None) -> dict[str, bytes]:
    """Every file of the talk bundle, path (inside the bundle) -> bytes."""
    options = options or ExportOptions()
    res = talk.result
    files: dict[str, bytes] = {}
    notes: list[str] = []
    engines: dict[str, str] = {}
    k = talk.frame_index(options.frame)
    it = talk.iterations[k]
    names = {"strip": "strip", "pair": f"pair_iter_{it:04d}", "tsne2d": f"tsne2d_iter_{it:04d}",
             "tsne3d": f"tsne3d_iter_{it:04d}", "loss": "loss", "islands": "islands", "alignment": "alignment"}
    figure_options = options
    with ExitStack() as stack:
        if options.engine in ("auto", "plotly") and find_chromium() is not None:
            try:
                stack.enter_context(kaleido_session())
            except NoChromium as err:  # one failed start is enough: matplotlib draws the rest
                notes.append(str(err))
                figure_options = replace(options, engine="matplotlib")
        if not talk.three_d:
            notes.append("1-D (grayscale) maps: no 3-D scatter or 3-D film")
        for name in talk.figure_names():
            for fmt in options.formats:
                progress(f"{name}.{fmt}")
                ex = figure_bytes(talk, name, fmt, figure_options)
                files[f"figures/{names[name]}.{fmt}"] = ex.data
                engines[name] = ex.engine
                if ex.note and ex.note not in notes:
                    notes.append(ex.note)
    for name in talk.animation_names() if options.animations else ():
        progress(f"{name} frames")
        frames = film_frames(talk, name, options)
        for fmt in options.animations:
            progress(f"{name}.{fmt}")
            files[f"animations/{name}.{fmt}"] = animation_bytes(talk, name, fmt, options, frames)
    input_path, input_data = _input_file(talk)
    files[input_path] = input_data
    files["metrics.csv"] = metrics_csv(res).encode()
    files["metrics.json"] = json.dumps(metrics(res), indent=2, default=_json_default).encode()
    man = manifest(res)
    man["input_file"] = input_path
    man["input_file_sha256"] = _sha(input_data)
    man["export"] = {"options": options.to_dict(), "frame_iteration": it, "engines": engines, "notes": notes,
                     "files": {p: _sha(d) for p, d in sorted(files.items()) if p.startswith(("figures/",
                                                                                              "animations/"))}}
    files["manifest.json"] = json.dumps(man, indent=2, default=_json_default).encode()
    s = res.settings
    record = res.teacher.record()
    weights_hint = ""
    if res.teacher.weights.kind == "local":
        weights_hint = ("\nThe teacher's weights came from a local file; where it is not at the same path, "
                        "add --weights FILE.\n")
    elif res.teacher.weights.pretrained:
        weights_hint = ("\nThe teacher's weights came from Hugging Face; reproducing needs them in the cache "
                        "or the hub within reach (or --weights FILE).\n")
    files["README.txt"] = README.format(
        image=res.image.name, sha=res.image.sha256, teacher=res.teacher.model, family=record["family"],
        patch=record["patch"], px=record["pixels"], source=res.teacher.weights.kind,
        detail=res.teacher.weights.detail, preset=s.ttt.preset, loss=s.ttt.loss, iters=s.ttt.iters, lr=s.ttt.lr,
        grid=s.grid, seed=s.ttt.seed, counts=", ".join(f"{i}: {c}" for i, c in res.islands),
        teacher_islands=res.teacher_islands, tau=s.tau, min_size=s.min_size, style=options.style, frame=it,
        recipe=s.recipe, describe=describe(s.ttt),
        teacher_share=f"{res.alignment[-1][1]:.2f}" if res.alignment else "-",
        position_share=f"{res.alignment[-1][2]:.2f}" if res.alignment else "-",
        az=options.azimuth, el=options.elevation,
        figures=", ".join(sorted({p.split("/")[1].rsplit(".", 1)[0] for p in files if p.startswith("figures/")})),
        dpi=f"{options.width_px} px wide" if options.width_px else f"{options.dpi} dpi",
        animations=", ".join(sorted(p.split("/")[1] for p in files if p.startswith("animations/"))) or "none",
        notes="".join(f"Note: {n}\n" for n in notes), bundle=bundle_name(talk) + ".zip",
        weights_hint=weights_hint).encode()
    return files


def zip_bytes(files: dict[str, bytes], root: str) -> bytes:
    """The files in one zip under the folder `root`; fixed dates, so the same
    files give the same zip."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(files):
            info = zipfile.ZipInfo(f"{root}/{path}", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED if path.endswith((".png", ".gif", ".mp4")) else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, files[path])
    return buf.getvalue()


def bundle_bytes(talk: Talk, options: Optional[ExportOptions] = None,
                 progress: Callable[[str], None] = lambda s: None) -> bytes:
    """The talk bundle as zip bytes (the app's download)."""
    return zip_bytes(bundle_files(talk, options, progress), bundle_name(talk))


def write_bundle(talk: Talk, out_dir, options: Optional[ExportOptions] = None,
                 progress: Callable[[str], None] = lambda s: None) -> Path:
    """Write out_dir/<image>-talk.zip and the same files unpacked in
    out_dir/<image>-talk/; returns the zip's path."""
    files = bundle_files(talk, options, progress)
    root = bundle_name(talk)
    out_dir = Path(out_dir)
    folder = out_dir / root
    for path, data in files.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    zpath = out_dir / f"{root}.zip"
    zpath.write_bytes(zip_bytes(files, root))
    return zpath


# -- reproduce ----------------------------------------------------------------------

@dataclass
class Bundle:
    """What `read_bundle` found: the manifest, the original metrics (when
    present) and the bundled input image bytes (when present)."""

    manifest: dict
    metrics: Optional[dict] = None
    image_bytes: Optional[bytes] = None
    source: str = ""


def read_bundle(path) -> Bundle:
    """Read a talk bundle (.zip) or a manifest.json (the image and metrics are
    looked up beside it)."""
    path = Path(path)
    if not path.is_file():
        raise ApmVizError(f"no such bundle or manifest: {path}")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith("manifest.json")]
            if not names:
                raise ApmVizError(f"{path.name}: no manifest.json in this zip")
            mpath = min(names, key=len)
            root = mpath[: -len("manifest.json")]
            man = _parse_manifest(z.read(mpath), path.name)
            read = lambda rel: z.read(root + rel) if root + rel in z.namelist() else None  # noqa: E731
            met = read("metrics.json")
            img = read(man.get("input_file", "")) if man.get("input_file") else None
    else:
        man = _parse_manifest(path.read_bytes(), path.name)
        folder = path.parent
        met_path = folder / "metrics.json"
        met = met_path.read_bytes() if met_path.is_file() else None
        img = None
        if man.get("input_file"):
            p = (folder / man["input_file"]).resolve()
            if folder.resolve() in p.parents and p.is_file():
                img = p.read_bytes()
    try:
        metrics_d = json.loads(met) if met else None
    except ValueError:
        metrics_d = None
    return Bundle(man, metrics_d, img, str(path))


def _parse_manifest(data: bytes, name: str) -> dict:
    try:
        man = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ApmVizError(f"{name}: not a JSON manifest") from None
    if not isinstance(man, dict) or "settings" not in man or "image" not in man:
        raise ApmVizError(f"{name}: not an apm-viz manifest (no settings or image)")
    return man


def compare_metrics(before: dict, after: dict, rtol: float = 1e-5) -> list[str]:
    """Differences between two metrics dicts (loss, loss terms, islands); empty when they agree."""
    diffs = []
    a, b = np.array(before.get("loss", []), float), np.array(after.get("loss", []), float)
    if a.shape != b.shape:
        diffs.append(f"loss has {len(b)} iterations, the bundle {len(a)}")
    elif a.size:
        rel = np.max(np.abs(a[:, 1] - b[:, 1]) / np.maximum(np.abs(a[:, 1]), 1e-30))
        if not np.array_equal(a[:, 0], b[:, 0]) or rel > rtol:
            diffs.append(f"loss differs (largest relative difference {rel:.2g})")
    if [list(x) for x in before.get("islands", [])] != [list(x) for x in after.get("islands", [])]:
        diffs.append(f"island counts differ: {before.get('islands')} then, {after.get('islands')} now")
    if before.get("teacher_islands") != after.get("teacher_islands"):
        diffs.append(f"teacher islands {before.get('teacher_islands')} then, {after.get('teacher_islands')} now")
    then, now = before.get("teacher") or {}, after.get("teacher") or {}
    diffs += [f"teacher {k} {then[k]} then, {now.get(k)} now" for k in ("name", "timm_name", "patch", "pixels", "dim")
              if k in then and then[k] != now.get(k)]
    return diffs


def reproduce_settings(bundle: Bundle, weights: Optional[str] = None):
    """The run's `pipeline.Settings` from a manifest. A run made with a
    random-init teacher is remade with one (same seed) rather than with
    whatever weights this machine happens to have."""
    from .pipeline import Settings

    try:
        settings = Settings.from_dict(bundle.manifest["settings"])
    except (TypeError, ValueError, KeyError) as err:
        raise ApmVizError(f"the manifest's settings do not load ({err})") from None
    check_teacher(bundle.manifest.get("teacher", {}), settings.teacher)
    if weights is not None:
        return replace(settings, weights=weights)
    if bundle.manifest.get("teacher", {}).get("weights_source") == "random":
        return replace(settings, weights="random")
    return settings


def check_teacher(record: dict, name: str) -> None:
    """Refuse, before any work, a bundle whose recorded teacher (`TeacherOutput.record`)
    this version's registry entry `name` would not rebuild (another timm model,
    patch, width, global vector or normalisation)."""
    from .teachers import describe as describe_teacher

    if not isinstance(record, dict):
        raise ApmVizError("the manifest's teacher entry is not a mapping")
    diffs = describe_teacher(name).differences(record)
    if diffs:
        raise ApmVizError(f"the bundle's teacher is not the {name} this version builds: " + "; ".join(diffs))


def check_weights(bundle: Bundle, result: IslandsResult) -> None:
    """Refuse to call a run reproduced when the teacher's weights came from elsewhere."""
    then = bundle.manifest.get("teacher", {}).get("weights_source")
    now = result.teacher.weights.kind
    if then and then != "random" and now == "random":
        raise ApmVizError(f"the bundle's teacher had pretrained weights ({then}); none were found here: "
                          "name the file with --weights")


def files_report(bundle: Bundle, files: dict[str, bytes]) -> tuple[int, int]:
    """(identical, compared) figure and animation files, by hash against the manifest."""
    then = bundle.manifest.get("export", {}).get("files", {})
    same = sum(1 for p, h in then.items() if p in files and _sha(files[p]) == h)
    return same, len(then)


def summary_lines(result: IslandsResult) -> list[str]:
    """What the command line prints at the end of a run, one line each."""
    lines = [f"loss fell {result.run.loss_drop():.3g}-fold; islands by iteration "
             + ", ".join(f"{i}:{c}" for i, c in result.islands) + f"; teacher {islands_text(result.teacher_islands)}"]
    if result.alignment:
        i, t, p = result.alignment[-1]
        lines.append(f"alignment at iteration {i}: teacher share {t:.2f}, position share {p:.2f}")
    return lines
