"""Dataset evaluation: zero-shot CLIP against test-time-trained APM, image by image.

One pure per-item function, `evaluate_item(item, settings, worker)`: one
image and its settings in, one result row out, keyed by the row's id. The
`Worker` holds what every item shares (the CLIP and its text classifier),
loaded once per process by `worker_for(settings)`. `run` hands `job(settings)`
to a runner (`runners.InProcess` by default, `ray_runner.RayRunner` for a
cluster), which calls the item function for each item not yet written: the
rows are the same whichever runs them.

Rows go to DIR/results.jsonl as they finish and DIR/run.json pins the
settings (`results`): an interrupted run keeps every finished row, a second
run skips the ids already written, and resuming with other settings is
refused. The summary sorts rows by id, so its order does not depend on the
order rows finished in.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

from .classify import TOP_K, ClassifyTTT, prepare, topk
from .clip import DEFAULT_CLIP, ClipTeacher, TextClassifier, create_clip
from .corruptions import Applied
from .dataset import Dataset, per_class as limit_per_class, scan, select
from .errors import ApmVizError
from .images import load_image, to_array
from .labels import LabelSet, load_labels
from .results import RESULTS, RUN, ResultsFile, pending, pin  # noqa: F401 (RUN, pending: this module's API)
from .runners import Job, Runner, run_items
from .summary import markdown, summarize
from .ttt import TTTConfig, drive

SUMMARY_JSON, SUMMARY_MD = "summary.json", "summary.md"
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


def pin_settings(out_dir: Path, settings: EvalSettings, dataset: Dataset) -> None:
    """Write DIR/run.json, or refuse when it names other settings."""
    pin(out_dir, settings.to_dict(), dataset=str(dataset.root.resolve()), layout=dataset.layout)


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


def plan(dataset, settings: EvalSettings, corruptions: list[str], severities: list[int],
         per_class: Optional[int] = None) -> tuple[Dataset, list[Item]]:
    """Scan the data set and list its items (bad input fails here, before any model is built)."""
    ds = scan(dataset, load_labels(settings.labels))
    if per_class is not None:
        ds = limit_per_class(ds, per_class)
    return ds, items(ds, corruptions, severities)


def _make_worker(settings: EvalSettings, log: Callable[[str], None]) -> Worker:
    return worker_for(settings, progress=lambda d, n: log(f"  text classifier: {d}/{n} classes"))


def _describe(worker: Worker) -> dict:
    return {"weights": worker.clip.weights.label, "warning": worker.clip.weights.warning}


def job(settings: EvalSettings) -> Job:
    """What a runner needs: `worker_for` once per process, `evaluate_item` per item."""
    return Job(settings, _make_worker, evaluate_item, _describe)


def run(dataset, settings: EvalSettings, out_dir, corruptions: list[str], severities: list[int],
        progress: Optional[Callable[[int, int, Optional[dict]], None]] = None,
        log: Callable[[str], None] = lambda s: None, per_class: Optional[int] = None,
        runner: Optional[Runner] = None) -> dict:
    """Evaluate every item not yet in DIR/results.jsonl, then write the summary.

    runner: where the items run (default in this process). progress(done,
    total, row) after each row (row None at the start). An interrupt (Ctrl-C)
    keeps every row written and writes the summary of those before it
    propagates.
    """
    out = Path(out_dir)
    ds, todo = plan(dataset, settings, corruptions, severities, per_class)
    out.mkdir(parents=True, exist_ok=True)
    pin_settings(out, settings, ds)
    results = ResultsFile(out)
    info: dict = {}
    try:
        run_items(job(settings), todo, results, runner, progress=progress, log=log, info=info)
    finally:
        summary = write_summary(out, results, settings, info.get("weights", ""), info.get("warning"))
    return summary


#: The embedded default: `run` with no runner evaluates in this process.
run_in_process = run
