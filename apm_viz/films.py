"""Island films for a folder: one islands film per image, with metrics and a summary.

The per-item function `film_item(item, settings, teacher)`: one image in, its
film's metrics row out. The film is `pipeline.compute` and
`pipeline.write_outputs` (frames, islands.gif, metrics.json, manifest.json);
its files travel in the row as bytes under "files", and the driver writes them
to DIR/films/<image path>/ before the row goes to DIR/results.jsonl
(`FilmFolder.commit`). A row on disk therefore means a complete film, on
whichever machine the film was made. `worker_for(settings)` builds the teacher
once per process. Runners, resume and DIR/run.json are as for `evaluate`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .dataset import list_images
from .errors import ApmVizError
from .images import load_image
from .pipeline import Settings, compute, write_outputs
from .results import ResultsFile, pin
from .runners import Job, Runner, run_items
from .teachers import Teacher, create_teacher

FILMS, SUMMARY_JSON, SUMMARY_MD = "films", "summary.json", "summary.md"
#: metrics.json entries left out of a row: per-iteration lists (they stay in the
#: film's own metrics.json) and the settings (pinned once in DIR/run.json).
LEFT_OUT = ("loss", "loss_terms", "settings")


@dataclass(frozen=True)
class FilmItem:
    """One image of the folder. id: its path relative to the folder (POSIX), unique and stable."""

    id: str
    path: str


def plan(folder) -> list[FilmItem]:
    """The images under `folder` (any depth, sorted); a missing or empty folder fails here."""
    root = Path(folder)
    if not root.is_dir():
        raise ApmVizError(f"no such folder: {folder}")
    paths = list_images(root)
    if not paths:
        raise ApmVizError(f"{folder}: no images (PNG, JPEG, WebP, BMP, TIFF or GIF files)")
    return [FilmItem(p.relative_to(root).as_posix(), str(p)) for p in paths]


_TEACHERS: dict[tuple, Teacher] = {}


def worker_for(settings: Settings) -> Teacher:
    """The process's teacher for these settings (built on first use, then reused)."""
    key = (settings.teacher, settings.weights, settings.allow_download, settings.ttt.seed, settings.ttt.device)
    if key not in _TEACHERS:
        _TEACHERS.clear()  # one teacher per process at a time
        _TEACHERS[key] = create_teacher(settings.teacher, settings.weights, settings.allow_download,
                                        seed=settings.ttt.seed, device=settings.ttt.device)
    return _TEACHERS[key]


def film_item(item: FilmItem, settings: Settings, teacher: Teacher) -> dict:
    """One image's film: the row (its metrics.json without the per-iteration
    lists, the last island count) and the film's files as bytes under "files".

    An image that cannot be read gives a row with "error" and no film.
    """
    t0 = time.perf_counter()
    row: dict = {"id": item.id, "image": item.id}
    try:
        image = load_image(item.path)
        result = compute(image, settings, teacher=teacher)
    except ApmVizError as err:
        row.update(error=str(err), seconds={"total": time.perf_counter() - t0})
        return row
    with tempfile.TemporaryDirectory(prefix="apm-viz-film-") as tmp:
        write_outputs(result, Path(tmp))
        files = {p.relative_to(tmp).as_posix(): p.read_bytes() for p in sorted(Path(tmp).rglob("*")) if p.is_file()}
    metrics = json.loads(files["metrics.json"])
    row.update({k: v for k, v in metrics.items() if k not in LEFT_OUT})
    row.update(image_sha256=image.sha256, iterations=settings.ttt.iters, loss_first=metrics["loss"][0][1],
               loss_last=metrics["loss"][-1][1], islands_last=metrics["islands"][-1][1], files=files)
    row["seconds"] = {**metrics["seconds"], "total": time.perf_counter() - t0}
    return row


def _make_worker(settings: Settings, log: Callable[[str], None]) -> Teacher:
    teacher = worker_for(settings)
    log(f"teacher {settings.teacher}: {teacher.weights.label}")
    return teacher


def _describe(teacher: Teacher) -> dict:
    return {"weights": teacher.weights.label, "warning": teacher.weights.warning}


def job(settings: Settings) -> Job:
    """What a runner needs: `worker_for` once per process, `film_item` per image."""
    return Job(settings, _make_worker, film_item, _describe)


class FilmFolder:
    """DIR/films/<image path>/ for each film, DIR/results.jsonl for the rows."""

    def __init__(self, out_dir: Path, results: ResultsFile):
        self.root = Path(out_dir) / FILMS
        self.results = results

    def commit(self, row: dict) -> None:
        """Write the row's film (into a side folder, then renamed into place), then the row."""
        if row["id"] in self.results.done:
            return  # a retried item: the first film and row stand
        row = dict(row)
        files = row.pop("files", None)
        if files is not None:
            dest = self.root / row["id"]
            part = dest.with_name(dest.name + ".partial")
            shutil.rmtree(part, ignore_errors=True)
            for name, data in files.items():
                (part / name).parent.mkdir(parents=True, exist_ok=True)
                (part / name).write_bytes(data)
            if dest.exists():  # left by a run stopped between the rename and its row
                shutil.rmtree(dest)
            part.rename(dest)
            row["film"] = f"{FILMS}/{row['id']}"
        self.results.append(row)


def write_summary(out_dir: Path, results: ResultsFile, settings: Settings, weights_label: str = "",
                  warning: Optional[str] = None) -> dict:
    """DIR/summary.json and DIR/summary.md: one line per image, sorted by its path."""
    rows = results.rows()
    films = [r for r in rows if "error" not in r]
    summary = {
        "rows": len(rows), "films": len(films), "errors": len(rows) - len(films),
        "images": [{k: r.get(k) for k in ("id", "status", "islands", "islands_last", "teacher_islands", "loss_drop",
                                          "film", "error")} for r in rows],
        "settings": settings.to_dict(), "weights": weights_label,
    }
    if warning:
        summary["warning"] = warning
    out = Path(out_dir)
    (out / SUMMARY_JSON).write_text(json.dumps(summary, indent=2))
    lines = [f"# Island films: teacher {settings.teacher}, grid {settings.grid}x{settings.grid}, "
             f"{settings.ttt.preset} preset, {settings.ttt.loss} loss, {settings.ttt.iters} iterations", ""]
    if warning:
        lines += [f"**Warning.** {warning}", ""]
    lines += [f"{summary['films']} films, {summary['errors']} images that could not be read. Islands at tau "
              f"{settings.tau}, at least {settings.min_size} locations each.", "",
              "| image | status | islands at the last snapshot | islands by snapshot | teacher's islands | "
              "loss fell | film |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['id']} | error: {r['error']} | | | | | |")
        else:
            by = ", ".join(str(c) for _, c in r["islands"])
            lines.append(f"| {r['id']} | {r['status']} | {r['islands_last']} | {by} | {r['teacher_islands']} | "
                         f"{r['loss_drop']:.3g}-fold | {r['film']}/islands.gif |")
    (out / SUMMARY_MD).write_text("\n".join(lines) + "\n")
    return summary


def run(folder, settings: Settings, out_dir, runner: Optional[Runner] = None,
        progress: Optional[Callable[[int, int, Optional[dict]], None]] = None,
        log: Callable[[str], None] = lambda s: None) -> dict:
    """Film every image under `folder` not yet in DIR/results.jsonl, then write the summary.

    Interrupted (Ctrl-C), it keeps every film and row written and writes the
    summary of those before the interrupt propagates.
    """
    out = Path(out_dir)
    todo = plan(folder)
    out.mkdir(parents=True, exist_ok=True)
    pin(out, settings.to_dict(), folder=str(Path(folder).resolve()))
    results = ResultsFile(out)
    info: dict = {}
    try:
        run_items(job(settings), todo, results, runner, commit=FilmFolder(out, results).commit, progress=progress,
                  log=log, info=info)
    finally:
        summary = write_summary(out, results, settings, info.get("weights", ""), info.get("warning"))
    return summary
