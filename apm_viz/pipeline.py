"""The whole islands computation for one image, as the command line and the
exporters run it: image -> teacher -> TTT -> projection -> island counts.

The app runs the same steps one at a time (so it can show progress and
cache each); this module strings them together and writes the results.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .alignment import alignment_rows
from .images import LoadedImage, load_image, to_array
from .islands import (DEFAULT_MIN_SIZE, DEFAULT_TAU, Projection, ProjectionConfig, count_islands,
                      island_history, islands_text, project)
from .provenance import package_versions
from .recipes import QUERY_CAN_SHOW, describe, islands_config, islands_projection
from .teachers import DEFAULT_TEACHER, Teacher, TeacherOutput, create_teacher
from .ttt import Run, TTTConfig, run_ttt


@dataclass(frozen=True)
class Settings:
    """Everything that decides an islands result (with the image).

    recipe: "aligned" or "authors" (`recipes`), recorded so a manifest says
    which; `ttt` and `projection` hold what it decided.
    """

    grid: int = 32
    teacher: str = DEFAULT_TEACHER
    weights: Optional[str] = None
    allow_download: bool = True
    ttt: TTTConfig = field(default_factory=islands_config)
    projection: ProjectionConfig = field(default_factory=islands_projection)
    tau: float = DEFAULT_TAU
    min_size: int = DEFAULT_MIN_SIZE
    recipe: str = "aligned"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ttt"] = self.ttt.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Settings":
        d = dict(d)
        d["ttt"] = TTTConfig.from_dict(d.get("ttt", {}))
        d["projection"] = ProjectionConfig(**d.get("projection", {}))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class IslandsResult:
    """islands: [(iteration, count)] per snapshot. alignment: [(iteration,
    teacher share, position share)] per snapshot (`alignment.alignment`)."""

    image: LoadedImage
    settings: Settings
    teacher: TeacherOutput
    run: Run
    projection: Projection
    islands: list[tuple[int, int]]
    teacher_islands: int
    seconds: dict[str, float]
    alignment: list[tuple[int, float, float]] = field(default_factory=list)


def encode(image: LoadedImage, teacher: Teacher, grid: int) -> TeacherOutput:
    """The teacher's view of an image at a `grid` x `grid` patch grid (grid * patch pixels)."""
    return teacher.encode(to_array(image.image, teacher.pixels(grid)))


def compute(source, settings: Settings, progress: Optional[Callable[[Run], None]] = None,
            log: Callable[[str], None] = lambda s: None, teacher: Optional[Teacher] = None) -> IslandsResult:
    """Run the islands experiment on one image (path, bytes or LoadedImage).

    teacher: one already built for `settings` (a worker reuses it across
    images); default: built here.
    """
    seconds = {}
    t = time.perf_counter()
    image = source if isinstance(source, LoadedImage) else load_image(source)
    log(f"recipe {settings.recipe}: {describe(settings.ttt)}")
    log(QUERY_CAN_SHOW["figure" if settings.ttt.apm_config().local_patch else "authors"])
    if teacher is None:
        teacher = create_teacher(settings.teacher, settings.weights, settings.allow_download, seed=settings.ttt.seed,
                                 device=settings.ttt.device)
    px = teacher.pixels(settings.grid)
    log(f"teacher {settings.teacher} ({teacher.family.name}, patch {teacher.patch}): grid {settings.grid}x"
        f"{settings.grid} = {px}x{px} px; weights {teacher.weights.label}")
    out = encode(image, teacher, settings.grid)
    seconds["teacher"] = time.perf_counter() - t
    t = time.perf_counter()
    run = run_ttt(out, settings.ttt, progress=progress)
    seconds["ttt"] = time.perf_counter() - t
    if run.status != "done":
        log(f"run {run.status}: {run.message}")
    t = time.perf_counter()
    fields = [s.field for s in run.snapshots]
    proj = project(fields, settings.projection)
    seconds["projection"] = time.perf_counter() - t
    counts = island_history(fields, settings.tau, settings.min_size)
    return IslandsResult(image, settings, out, run, proj, list(zip(run.iterations, counts)),
                         count_islands(out.grid, settings.tau, settings.min_size), seconds,
                         alignment_rows(run.iterations, fields, out.grid))


def result_from_film(film, image, settings, tau: float, min_size: int, projection3d: Projection) -> IslandsResult:
    """An `IslandsResult` from an app film (`apm_viz.film.IslandsFilm`), so the
    app exports through the same code as the command line.

    settings must be the `pipeline.Settings` that `pipeline.compute` would need
    to recompute this film (the manifest records them)."""
    n = film.frames
    run = film.run
    if n < len(run.snapshots):
        run = replace(run, snapshots=run.snapshots[:n])
    counts = film.island_counts(tau, min_size)
    return IslandsResult(image, settings, film.teacher, run, projection3d, counts,
                         film.teacher_islands(tau, min_size), {"app": film.seconds}, film.alignment())


def metrics(result: IslandsResult) -> dict:
    run = result.run
    return {
        "loss": [[i, v] for i, v in run.losses],
        "loss_terms": {k: [[i, v] for i, v in pts] for k, pts in run.terms.items()},
        "islands": [[i, c] for i, c in result.islands],
        "teacher_islands": result.teacher_islands,
        "alignment": [[i, _finite(t), _finite(p)] for i, t, p in result.alignment],
        "loss_drop": run.loss_drop(),
        "status": run.status,
        "message": run.message,
        "weights_source": result.teacher.weights.kind,
        "weights_detail": result.teacher.weights.detail,
        "teacher": result.teacher.record(),
        "seconds": result.seconds,
        "settings": result.settings.to_dict(),
    }


def manifest(result: IslandsResult) -> dict:
    return {
        "kind": "apm-viz islands",
        "image": {"name": result.image.name, "sha256": result.image.sha256},
        "settings": result.settings.to_dict(),
        "recipe": result.settings.recipe,
        "seed": result.settings.ttt.seed,
        "teacher": {"model": result.teacher.model, **result.teacher.record()},
        "versions": package_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def numbers_json(result: IslandsResult) -> bytes:
    """{"manifest": ..., "metrics": ...}: what a talk bundle's manifest.json and
    metrics.json hold, in one small file (no figures)."""
    return json.dumps({"manifest": manifest(result), "metrics": metrics(result)}, indent=2,
                      default=_json_default).encode()


def frame_title(result: IslandsResult, k: int) -> str:
    snap = result.run.snapshots[k]
    return f"iteration {snap.iteration}   loss {snap.loss:.3g}   {islands_text(result.islands[k][1])}"


def write_outputs(result: IslandsResult, out_dir: Path) -> list[Path]:
    """metrics.json, manifest.json, frames/iter_NNNN.png and islands.gif under out_dir."""
    from PIL import Image

    from .figures.islands import frame_figure
    from .render import animation_to_bytes, figure_to_rgb

    out_dir = Path(out_dir)
    frames_dir = out_dir / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    written = []
    pictures = []
    for k, snap in enumerate(result.run.snapshots):
        fig = frame_figure(result.teacher.image, result.projection.colors[k], frame_title(result, k))
        arr = figure_to_rgb(fig)
        path = frames_dir / f"iter_{snap.iteration:04d}.png"
        Image.fromarray(arr).save(path)
        pictures.append(arr)
        written.append(path)
    gif = out_dir / "islands.gif"
    if pictures:  # 0.4 s a frame, the last held 1.5 s
        gif.write_bytes(animation_to_bytes(pictures, "gif", fps=2.5, hold_last=1.1))
        written.append(gif)
    for name, payload in (("metrics.json", metrics(result)), ("manifest.json", manifest(result))):
        path = out_dir / name
        path.write_text(json.dumps(payload, indent=2, default=_json_default))
        written.append(path)
    return written


def _finite(x: float) -> Optional[float]:
    """A float for JSON: None where it is not finite (a field with no structure has no alignment)."""
    x = float(x)
    return x if np.isfinite(x) else None


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)
