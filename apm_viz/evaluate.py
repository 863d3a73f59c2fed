"""Dataset evaluation: zero-shot CLIP against test-time-trained APM, image by image.

One pure per-item function, `evaluate_item(item, settings, worker)`: one
image and its settings in, one result row out, keyed by the row's id. The
`Worker` holds what every item shares (the CLIP and its text classifier),
loaded once per process by `worker_for(settings)`; a runner calls the item
function for each item not yet written. `run_in_process` is the embedded
runner; a distributed one calls the same function and writes through the
same `ResultsFile`, so the rows are the same whichever runs them.

Rows go to DIR/results.jsonl, one line each, flushed and synced as they
finish: an interrupted run keeps every finished row, and a second run skips
the ids already written. DIR/run.json pins the settings: resuming with other
settings is refused. The summary sorts rows by id, so its order does not
depend on the order rows finished in.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

from .classify import TOP_K, ClassifyTTT, prepare, topk
from .clip import DEFAULT_CLIP, ClipTeacher, TextClassifier, create_clip
from .corruptions import Applied
from .dataset import Dataset, per_class as limit_per_class, scan, select
from .errors import ApmVizError
from .images import load_image, to_array
from .labels import LabelSet, load_labels
from .provenance import package_versions
from .summary import markdown, summarize
from .ttt import TTTConfig, drive

RESULTS, RUN, SUMMARY_JSON, SUMMARY_MD = "results.jsonl", "run.json", "summary.json", "summary.md"
#: Iterations at which a row records the APM's top-1 (besides the last).
CHECKPOINTS = (0, 50, 100, 200, 250, 400, 600, 800, 1000, 1200)


@dataclass(frozen=True)
class EvalSettings:
    """What decides every row of an evaluation (besides the item)."""

    clip: str = DEFAULT_CLIP
    weights: Optional[str] = None
    allow_download: bool = True
    labels: str = "cifar10"
    templates: str = "openai"
    seed: int = 0
    ttt: TTTConfig = field(default_factory=TTTConfig)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ttt"] = self.ttt.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EvalSettings":
        d = dict(d)
        d["ttt"] = TTTConfig.from_dict(d.get("ttt", {}))
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def worker_key(self) -> tuple:
        return (self.clip, self.weights, self.allow_download, self.labels, self.templates, self.seed,
                self.ttt.device)


@dataclass(frozen=True)
class Item:
    """One image under one corruption: the unit of work.

    id: "<path in the data set>|<corruption>|<severity>", unique and stable.
    pre_corrupted: the file is already corrupted (an ImageNet-C tree).
    """

    id: str
    path: str
    rel: str
    label: str
    label_index: int
    corruption: str
    severity: int
    pre_corrupted: bool = False

    @property
    def seed(self) -> int:
        """The corruption's seed: a function of the id alone."""
        return int(hashlib.sha256(self.id.encode()).hexdigest()[:8], 16)


def items(ds: Dataset, corruptions: list[str], severities: list[int]) -> list[Item]:
    out = [Item(f"{e.rel}|{c}|{s}", str(e.path), e.rel, e.label, e.label_index, c, s, ds.pre_corrupted)
           for e, c, s in select(ds, corruptions, severities)]
    seen = set()
    for it in out:
        if it.id in seen:
            raise ApmVizError(f"{ds.root}: the image {it.rel!r} is listed twice")
        seen.add(it.id)
    return out


@dataclass
class Worker:
    """What every item shares, built once per process."""

    clip: ClipTeacher
    classifier: TextClassifier

    @property
    def labels(self) -> LabelSet:
        return self.classifier.labels


_WORKERS: dict[tuple, Worker] = {}


def worker_for(settings: EvalSettings, progress: Optional[Callable[[int, int], None]] = None) -> Worker:
    """The process's worker for these settings (built on first use, then reused)."""
    key = settings.worker_key()
    if key not in _WORKERS:
        _WORKERS.clear()  # one CLIP per process at a time
        clip = create_clip(settings.clip, settings.weights, settings.allow_download, seed=settings.seed,
                           device=settings.ttt.device)
        _WORKERS[key] = Worker(clip, clip.classifier(load_labels(settings.labels), settings.templates,
                                                     progress=progress))
    return _WORKERS[key]


def evaluate_item(item: Item, settings: EvalSettings, worker: Worker,
                  should_stop: Optional[Callable[[], bool]] = None) -> dict:
    """Classify one item zero-shot and after TTT: the result row.

    A file that cannot be read (or corrupted) gives a row with "error" and no
    prediction. The row holds top-5 class indices, probabilities of the true
    class, the loss, and the APM's top-1 at `CHECKPOINTS`.
    """
    t0 = time.perf_counter()
    row = {"id": item.id, "image": item.rel, "label": item.label, "label_index": item.label_index,
           "corruption": item.corruption, "severity": item.severity}
    clip = worker.clip
    try:
        image = load_image(item.path)
        if item.pre_corrupted:
            clip_image = to_array(image.image, clip.size)
            applied = Applied(item.corruption, item.severity, library="ImageNet-C files", function="read as stored",
                              note="pre-corrupted image; not corrupted again")
        else:
            clip_image, applied = prepare(image, clip, item.corruption, item.severity, item.seed)
        view = clip.encode(clip_image)
        result = drive(ClassifyTTT(view, worker.classifier, settings.ttt, applied, image.name, image.sha256),
                       should_stop=should_stop)
    except ApmVizError as err:
        row["error"] = str(err)
        row["seconds"] = time.perf_counter() - t0
        return row
    tp, ap = result.teacher_probs, result.apm_probs()
    t5, a5 = topk(tp, TOP_K), topk(ap, TOP_K)
    best = result.probs().argmax(axis=1)
    names = worker.labels.names
    row.update({
        "teacher_top1": t5[0], "teacher_top1_label": names[t5[0]], "teacher_correct": t5[0] == item.label_index,
        "teacher_top5": t5, "teacher_p_true": float(tp[item.label_index]),
        "apm_top1": a5[0], "apm_top1_label": names[a5[0]], "apm_correct": a5[0] == item.label_index,
        "apm_top5": a5, "apm_p_true": float(ap[item.label_index]),
        "apm_top1_at": [[i, int(b)] for i, b in enumerate(best) if i in CHECKPOINTS],
        "iterations": len(best) - 1, "status": result.run.status,
        "loss_first": result.run.losses[0][1], "loss_last": result.run.losses[-1][1],
        "applied": applied.to_dict(), "image_sha256": image.sha256,
        "seconds": time.perf_counter() - t0,
    })
    return row


class ResultsFile:
    """DIR/results.jsonl: append-only rows, one JSON object a line, synced per row.

    A line cut short by a crash is dropped on open (the file is truncated to
    its last complete line), so it is recomputed.
    """

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / RESULTS
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._rows: dict[str, dict] = {}
        if self.path.exists():
            data = self.path.read_bytes()
            keep = data.rfind(b"\n") + 1
            if keep != len(data):
                with open(self.path, "r+b") as f:
                    f.truncate(keep)
            for line in data[:keep].decode("utf-8", errors="replace").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(row, dict) and "id" in row:
                    self._rows[row["id"]] = row

    @property
    def done(self) -> set[str]:
        return set(self._rows)

    def append(self, row: dict) -> None:
        if row["id"] in self._rows:
            return  # a retried item: the first row stands
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._rows[row["id"]] = row

    def rows(self) -> list[dict]:
        """Every row, sorted by id."""
        return [self._rows[k] for k in sorted(self._rows)]


def pin_settings(out_dir: Path, settings: EvalSettings, dataset: Dataset) -> None:
    """Write DIR/run.json, or refuse when it names other settings."""
    path = Path(out_dir) / RUN
    mine = {"settings": settings.to_dict(), "dataset": str(dataset.root.resolve()), "layout": dataset.layout}
    if path.exists():
        try:
            theirs = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            raise ApmVizError(f"{path}: unreadable; use another --out folder") from None
        diff = [k for k in sorted(set(mine["settings"]) | set(theirs.get("settings", {})))
                if mine["settings"].get(k) != theirs.get("settings", {}).get(k)]
        if diff:
            raise ApmVizError(f"{out_dir} holds results made with other settings ({', '.join(diff)}); "
                              "use another --out folder to start afresh")
        return
    mine["versions"] = package_versions()
    mine["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path.write_text(json.dumps(mine, indent=2))


def write_summary(out_dir: Path, results: ResultsFile, settings: EvalSettings, weights_label: str = "",
                  warning: Optional[str] = None) -> dict:
    summary = summarize(results.rows())
    summary["settings"] = settings.to_dict()
    summary["weights"] = weights_label
    if warning:
        summary["warning"] = warning
    out = Path(out_dir)
    (out / SUMMARY_JSON).write_text(json.dumps(summary, indent=2))
    title = f"Top-1 accuracy (%), {settings.clip}, labels {settings.labels}, {settings.ttt.iters} TTT iterations"
    text = markdown(summary, title)
    if warning:
        text = text.replace("\n\n", f"\n\n**Warning.** {warning}\n\n", 1)
    (out / SUMMARY_MD).write_text(text)
    return summary


def pending(all_items: list[Item], results: ResultsFile) -> Iterator[Item]:
    done = results.done
    return (it for it in all_items if it.id not in done)


def plan(dataset, settings: EvalSettings, corruptions: list[str], severities: list[int],
         per_class: Optional[int] = None) -> tuple[Dataset, list[Item]]:
    """Scan the data set and list its items (bad input fails here, before any model is built)."""
    ds = scan(dataset, load_labels(settings.labels))
    if per_class is not None:
        ds = limit_per_class(ds, per_class)
    return ds, items(ds, corruptions, severities)


def run_in_process(dataset, settings: EvalSettings, out_dir, corruptions: list[str], severities: list[int],
                   progress: Optional[Callable[[int, int, Optional[dict]], None]] = None,
                   log: Callable[[str], None] = lambda s: None, per_class: Optional[int] = None) -> dict:
    """Evaluate every item not yet in DIR/results.jsonl, then write the summary.

    progress(done, total, row) after each row (row None at the start). An
    interrupt (Ctrl-C) keeps every row written and writes the summary of
    those before it propagates.
    """
    out = Path(out_dir)
    ds, todo_all = plan(dataset, settings, corruptions, severities, per_class)
    out.mkdir(parents=True, exist_ok=True)
    pin_settings(out, settings, ds)
    results = ResultsFile(out)
    todo = list(pending(todo_all, results))
    skipped = len(todo_all) - len(todo)
    if skipped:
        log(f"resuming: {skipped} of {len(todo_all)} rows already in {out / RESULTS}")
    worker = worker_for(settings, progress=lambda d, n: log(f"  text classifier: {d}/{n} classes"))
    if worker.clip.weights.warning:
        log(f"warning: {worker.clip.weights.warning}")
    if progress is not None:
        progress(skipped, len(todo_all), None)
    try:
        for k, item in enumerate(todo, skipped + 1):
            row = evaluate_item(item, settings, worker)
            results.append(row)
            if progress is not None:
                progress(k, len(todo_all), row)
    finally:
        summary = write_summary(out, results, settings, worker.clip.weights.label, worker.clip.weights.warning)
    return summary
