"""Test-time classification of one image as a job for `apm_viz.worker`.

The server prepares the picture CLIP sees (`classify.prepare`: clean, or
corrupted in ImageNet-C's frame) and sends it with the settings. The worker
process builds the CLIP and its text classifier (`evaluate.worker_for`: once
per process and settings, the text rows cached on disk), encodes the picture
and steps a `ClassifyTTT`, so the server never loads CLIP. While the CLIP and
the text rows are built (minutes for many prompts on a CPU), a thread of the
worker does it and each update says how far it is.

Updates: first the record's fixed part (CLIP's view, the text rows, the
teacher's probabilities, what was applied), then what is new of the run:
losses, the APM's global output per iteration, snapshots of the field.
`ClassifyView.result` is a `classify.ClassifyRun` that the figures read.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Hashable, Optional

import numpy as np

from .classify import ClassifyRun, ClassifyTTT
from .corruptions import Applied
from .errors import ApmVizError
from .evaluate import EvalSettings, worker_for
from .jobs import STEP_SECONDS, nbytes_of
from .ttt import Run


class _Cancelled(Exception):
    """Raised in the preparing thread when the run is cancelled before it trains."""


@dataclass
class ClassifyJob:
    """One image's zero-shot and test-time classification.

    key: what decides the result (the page's settings and the picture's hash).
    clip_image: (S, S, 3) float32 in [0, 1], the picture CLIP sees (S = its input size).
    settings: the CLIP, its weights, labels, templates, seed and the TTT recipe.
    applied: the corruption that made `clip_image`.
    """

    key: Hashable
    clip_image: np.ndarray
    settings: EvalSettings
    applied: Applied
    image_name: str = ""
    image_sha256: str = ""

    def check(self) -> None:
        from .clip import CLIP_MODELS
        from .labels import load_labels

        if self.settings.clip not in CLIP_MODELS:
            raise ApmVizError(f"unknown CLIP {self.settings.clip!r}; choose one of {', '.join(CLIP_MODELS)}")
        load_labels(self.settings.labels)  # a bad label file fails here, in one line
        if "token" not in self.settings.ttt.terms():
            raise ApmVizError("test-time classification trains the global output: its loss must include token")

    def open(self) -> "ClassifyWork":
        return ClassifyWork(self)

    def view(self) -> "ClassifyView":
        return ClassifyView(self)


class ClassifyWork:
    """The worker half: prepare (in a thread, with progress), then step the TTT in short slices."""

    def __init__(self, job: ClassifyJob):
        self.job = job
        self.finished = False
        self.held = False
        self.ttt: Optional[ClassifyTTT] = None
        self._target: Optional[int] = None
        self._cancel = False
        self._error: Optional[BaseException] = None
        self._phase, self._done, self._total = "building CLIP", 0, 0
        self._sent_record = False
        self._sent = {"losses": 0, "globals": 0, "snapshots": 0, "terms": {}}
        self._thread = threading.Thread(target=self._prepare, daemon=True, name="apm-viz-classify-prepare")
        self._thread.start()

    def _prepare(self) -> None:
        try:
            job = self.job
            worker = worker_for(job.settings, progress=self._text_progress)
            if self._cancel:
                raise _Cancelled
            self._phase = "encoding the image"
            view = worker.clip.encode(job.clip_image)
            self.ttt = ClassifyTTT(view, worker.classifier, job.settings.ttt, job.applied, job.image_name,
                                   job.image_sha256)
        except BaseException as err:  # reported by `step`, in the worker's loop
            self._error = err

    def _text_progress(self, done: int, total: int) -> None:
        self._phase, self._done, self._total = "text classifier", done, total
        if self._cancel:
            raise _Cancelled

    def control(self, msg) -> None:
        if msg == "cancel":
            self._cancel, self.held = True, False
            if self.ttt is not None:
                self.ttt.cancel()
        elif msg == "hold":
            self.held = True
        elif msg == "resume":
            self._target, self.held = None, False
        elif isinstance(msg, tuple) and msg[0] == "step":
            self._target, self.held = self._iteration() + int(msg[1]), False

    def _iteration(self) -> int:
        return self.ttt.trainer.iteration if self.ttt is not None else 0

    def step(self) -> dict:
        if self._thread.is_alive():
            self._thread.join(STEP_SECONDS)
            return {"phase": self._phase, "done": self._done, "total": self._total}
        if isinstance(self._error, _Cancelled):
            self.finished = True
            return {"phase": "cancelled", "cancelled": "cancelled before training started"}
        if self._error is not None:
            raise self._error
        ttt = self.ttt
        if self._cancel:
            ttt.cancel()
        t0 = time.perf_counter()
        while not ttt.run.finished and time.perf_counter() - t0 < STEP_SECONDS:
            left = None if self._target is None else self._target - ttt.trainer.iteration
            if left is not None and left <= 0:
                self.held = True
                break
            ttt.step(1)
        self.finished = ttt.run.finished
        return self._update()

    def _new(self, name: str, seq: list, sub: Optional[str] = None) -> list:
        store = self._sent if sub is None else self._sent[name]
        k = name if sub is None else sub
        out = list(seq[store.get(k, 0):])
        store[k] = len(seq)
        return out

    def _update(self) -> dict:
        result, run = self.ttt.run, self.ttt.run.run
        update = {"phase": "training", "iteration": self.ttt.trainer.iteration,
                  "losses": self._new("losses", run.losses), "globals": self._new("globals", result.globals),
                  "snapshots": self._new("snapshots", run.snapshots),
                  "terms": {k: self._new("terms", v, k) for k, v in run.terms.items()},
                  "status": run.status, "message": run.message, "seconds": run.seconds}
        if not self._sent_record:
            self._sent_record = True
            update["record"] = {"view": result.view, "classifier": result.classifier,
                                "teacher_probs": result.teacher_probs, "grid": run.grid}
        return update


class ClassifyView:
    """The server half: what the page reads.

    result: the `ClassifyRun` once the worker has CLIP's view (None before).
    phase: "waiting", "building CLIP", "text classifier" (done/total classes),
        "encoding the image", "training" or "cancelled".
    """

    def __init__(self, job: ClassifyJob):
        self.key = job.key
        self.config = job.settings.ttt
        self.settings = job.settings
        self.applied = job.applied
        self.clip_image = job.clip_image
        self.image_name, self.image_sha256 = job.image_name, job.image_sha256
        self.result: Optional[ClassifyRun] = None
        self.phase, self.done, self.total = "waiting", 0, 0
        self.iteration = 0
        self.message = ""
        self._lock = threading.Lock()

    @property
    def complete(self) -> bool:
        return self.result is not None and self.result.run.status == "done"

    @property
    def fraction(self) -> float:
        return min(self.iteration / max(self.config.iters, 1), 1.0)

    def apply(self, u: dict) -> None:
        with self._lock:
            self.phase = u["phase"]
            self.done, self.total = u.get("done", self.done), u.get("total", self.total)
            if "cancelled" in u:
                self.message = u["cancelled"]
            if "record" in u:
                rec = u["record"]
                run = Run(config=self.config, grid=rec["grid"], teacher_model=rec["view"].teacher.model,
                          weights=rec["view"].teacher.weights, terms={k: [] for k in self.config.terms()})
                self.result = ClassifyRun(rec["view"], rec["classifier"], rec["teacher_probs"], run, self.applied,
                                          self.image_name, self.image_sha256)
            if self.result is None or "losses" not in u:
                return
            res, run = self.result, self.result.run
            run.losses.extend(u["losses"])
            res.globals.extend(u["globals"])
            run.snapshots.extend(u["snapshots"])
            for k, v in u["terms"].items():
                run.terms.setdefault(k, []).extend(v)
            run.status, run.message, run.seconds = u["status"], u["message"], u["seconds"]
            self.iteration, self.message = u["iteration"], u["message"]

    @property
    def nbytes(self) -> int:
        r = self.result
        if r is None:
            return nbytes_of(self.clip_image)
        return nbytes_of(self.clip_image, r.view.teacher, r.view.clip_image, r.classifier.weights, r.teacher_probs,
                         r.globals, r.run.losses, r.run.terms, r.run.snapshots)


def classify_job(key: Hashable, clip_image: np.ndarray, settings: EvalSettings, applied: Applied,
                 image_name: str = "", image_sha256: str = "") -> ClassifyJob:
    """A ClassifyJob (the picture as float32, contiguous: it is pickled to the worker)."""
    return ClassifyJob(key, np.ascontiguousarray(clip_image, dtype=np.float32), settings, applied, image_name,
                       image_sha256)
