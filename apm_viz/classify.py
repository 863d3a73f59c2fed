"""Test-time classification: CLIP zero-shot against an APM trained on the one image.

The baseline classifies CLIP's image embedding against the template-averaged
text embeddings. The APM is a fresh model distilled on that one image with
the token loss (the paper's TTT): its pooled global output is trained to
equal CLIP's image embedding, the vector CLIP itself classifies, in the joint
image-text space (after the image tower's projection). So the APM's global
output needs no further projection: at every iteration it is classified
against the same text rows as the teacher, by cosine similarity times CLIP's
logit scale, then softmax. As the token loss falls to zero, the APM's
prediction tends to the teacher's; what TTT changes is where it stops.

`ClassifyTTT` advances like `ttt.Trainer` (step, cancel, `run.finished`),
reusing it, so `ttt.drive` and a run worker drive it as they drive a
trainer: a forward hook on the run's own APM (a model no one else holds)
records the global output of every iteration.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np

from .clip import ClipTeacher, ClipView, TextClassifier, create_clip, resize_array
from .corruptions import CLEAN, Applied, corrupt, imagenet_c_frame
from .errors import ApmVizError
from .images import LoadedImage, load_image, to_array
from .labels import load_labels
from .provenance import package_versions
from .ttt import Run, Trainer, TTTConfig, drive

#: TTT settings for classification. "paper": the authors' classification
#: recipe (the TTT MLP, weights drawn from N(0, 0.01) per image, Adam 1e-4
#: stepped down x0.1 every 200 iterations, 1200 iterations). "laptop": the
#: small APM at a constant 1e-4, 250 iterations, seconds on two cores.
RECIPES = {
    "paper": TTTConfig(preset="paper-ttt", loss="token", iters=1200, lr=1e-4, lr_step=200, init_std=0.01),
    "laptop": TTTConfig(preset="laptop", loss="token", iters=250, lr=1e-4),
}
DEFAULT_RECIPE = "laptop"
TOP_K = 5


def recipe(name: str = DEFAULT_RECIPE, **overrides) -> TTTConfig:
    """A classification recipe with overrides (None values are ignored)."""
    if name not in RECIPES:
        raise ApmVizError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    return replace(RECIPES[name], **{k: v for k, v in overrides.items() if v is not None})


def topk(probs: np.ndarray, k: int) -> list[int]:
    """Indices of the k largest probabilities, largest first; ties keep class order."""
    return [int(i) for i in np.argsort(-np.asarray(probs), kind="stable")[:k]]


@dataclass
class ClassifyRun:
    """One image's test-time classification.

    view: CLIP's view (what CLIP saw, the APM's input and target).
    classifier: the text rows (labels, (C, D) weights, logit scale).
    teacher_probs: (C,) CLIP's zero-shot probabilities.
    globals: per iteration i = 0, 1, ..., the APM's pooled global output (D,),
        from the same forward pass as `run.losses[i]`.
    run: the TTT run: losses and snapshots of the field (the Islands views read it).
    applied: the corruption applied before CLIP saw the image.
    """

    view: ClipView
    classifier: TextClassifier
    teacher_probs: np.ndarray
    run: Run
    applied: Applied
    image_name: str = ""
    image_sha256: str = ""
    globals: list[np.ndarray] = field(default_factory=list)
    _probs: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.classifier.labels.names

    @property
    def finished(self) -> bool:
        return self.run.finished

    @property
    def iterations(self) -> int:
        """Iterations with a recorded global output (0 .. n-1)."""
        return len(self.globals)

    def probs(self) -> np.ndarray:
        """(n, C) the APM's class probabilities at every recorded iteration."""
        if self._probs is None or len(self._probs) != len(self.globals):
            if not self.globals:
                return np.zeros((0, len(self.labels)), dtype=np.float32)
            self._probs = self.classifier.probabilities(np.stack(self.globals))
        return self._probs

    def apm_probs(self, iteration: Optional[int] = None) -> np.ndarray:
        """(C,) at `iteration` (default: the last recorded; clipped to what exists)."""
        p = self.probs()
        if not len(p):
            raise ApmVizError("the APM has not been evaluated yet")
        i = len(p) - 1 if iteration is None else min(max(int(iteration), 0), len(p) - 1)
        return p[i]

    def teacher_topk(self, k: int = TOP_K) -> list[tuple[str, float]]:
        return [(self.labels[i], float(self.teacher_probs[i])) for i in topk(self.teacher_probs, k)]

    def apm_topk(self, k: int = TOP_K, iteration: Optional[int] = None) -> list[tuple[str, float]]:
        p = self.apm_probs(iteration)
        return [(self.labels[i], float(p[i])) for i in topk(p, k)]

    def per_iteration(self) -> list[tuple[int, str, float]]:
        """(iteration, the APM's top-1 label, its probability) for every iteration."""
        p = self.probs()
        best = np.argmax(p, axis=1) if len(p) else []
        return [(i, self.labels[int(b)], float(p[i, int(b)])) for i, b in enumerate(best)]

    def top_classes(self, k: int = TOP_K) -> list[int]:
        """Classes worth plotting over iterations: the teacher's top k, then the APM's final top k."""
        out = topk(self.teacher_probs, k)
        if self.globals:
            out += [i for i in topk(self.apm_probs(), k) if i not in out]
        return out


class ClassifyTTT:
    """Steps a `ttt.Trainer` on CLIP's image embedding and classifies the APM as it goes.

    Usage: c = ClassifyTTT(view, classifier, config); while not c.run.finished: c.step(10)
    (or `ttt.drive(c, progress)`, which hands progress the `ClassifyRun`).
    """

    def __init__(self, view: ClipView, classifier: TextClassifier, config: TTTConfig,
                 applied: Applied = Applied(CLEAN, 0), image_name: str = "", image_sha256: str = "",
                 trainer: Optional[Trainer] = None):
        """trainer: an existing Trainer on `view.teacher` with `config` (e.g. an islands film's,
        so its frames and this record come from one run); None builds one."""
        if "token" not in config.terms():
            raise ApmVizError("test-time classification trains the global output: its loss must include token")
        if trainer is not None and (trainer.config != config or trainer.iteration != 0):
            raise ApmVizError("a classification run needs a fresh trainer with its own settings")
        self.config = config
        self.trainer = trainer if trainer is not None else Trainer(view.teacher, config)
        teacher_probs = classifier.probabilities(view.embedding)
        self.run = ClassifyRun(view, classifier, teacher_probs, self.trainer.run, applied, image_name, image_sha256)
        # The model belongs to this run alone, so a hook on it races with nothing.
        self.trainer.model.register_forward_hook(self._record)

    def _record(self, module, inputs, output) -> None:
        pooled = output[2]
        self.run.globals.append(pooled.detach()[0].float().cpu().numpy().copy())

    def step(self, n: int = 1) -> ClassifyRun:
        self.trainer.step(n)
        return self.run

    def cancel(self, message: str = "cancelled by the user") -> None:
        self.trainer.cancel(message)


def prepare(image: LoadedImage, clip: Union[ClipTeacher, int], corruption: str = CLEAN, severity: int = 5,
            seed: int = 0) -> tuple[np.ndarray, Applied]:
    """The picture CLIP sees: (S, S, 3) float32 in [0, 1] at CLIP's input size, and what was applied.

    clip: the teacher, or its input size S (`clip.input_size(name)`, no model built).
    Clean: a square centre crop resized to S (CLIP's own preprocessing).
    Corrupted: ImageNet-C's frame (256 resize, 224 centre crop), the
    corruption, then resized to S when S is not 224.
    """
    size = clip if isinstance(clip, int) else clip.size
    if corruption == CLEAN:
        return to_array(image.image, size), Applied(CLEAN, 0)
    frame = imagenet_c_frame(image.image)
    out, applied = corrupt(frame, corruption, severity, seed)
    return resize_array(out.astype(np.float32) / 255.0, size), applied


def classify_image(source, clip: ClipTeacher, classifier: TextClassifier, config: TTTConfig,
                   corruption: str = CLEAN, severity: int = 5, seed: int = 0,
                   progress: Optional[Callable[[ClassifyRun], None]] = None,
                   should_stop: Optional[Callable[[], bool]] = None) -> ClassifyRun:
    """Zero-shot and test-time classification of one image (a path, bytes or LoadedImage)."""
    image = source if isinstance(source, LoadedImage) else load_image(source)
    clip_image, applied = prepare(image, clip, corruption, severity, seed)
    view = clip.encode(clip_image)
    return drive(ClassifyTTT(view, classifier, config, applied, image.name, image.sha256), progress, should_stop)


def load_clip_and_labels(clip_name: str, labels: str, weights=None, allow_download: bool = True, seed: int = 0,
                         template_set: str = "openai", device: str = "cpu",
                         progress: Optional[Callable[[int, int], None]] = None
                         ) -> tuple[ClipTeacher, TextClassifier]:
    """The teacher and its text classifier, built once for any number of images."""
    label_set = load_labels(labels)
    clip = create_clip(clip_name, weights, allow_download, seed=seed, device=device)
    return clip, clip.classifier(label_set, template_set, progress=progress)


def result_dict(result: ClassifyRun, settings: dict) -> dict:
    """What `classify` writes to classification.json."""
    run = result.run
    return {
        "image": {"name": result.image_name, "sha256": result.image_sha256},
        "labels": {"set": result.classifier.labels.name, "classes": len(result.labels),
                   "templates": result.classifier.template_set},
        "teacher_top5": [[lab, p] for lab, p in result.teacher_topk(TOP_K)],
        "apm_top5": [[lab, p] for lab, p in result.apm_topk(TOP_K)] if result.globals else [],
        "per_iteration": [[i, lab, p] for i, lab, p in result.per_iteration()],
        "loss": {"first": run.losses[0][1] if run.losses else None,
                 "last": run.losses[-1][1] if run.losses else None, "iterations": len(run.losses)},
        "status": run.status,
        "message": run.message,
        "corruption": result.applied.to_dict(),
        "teacher": {"model": result.view.teacher.model, "weights_source": result.view.teacher.weights.kind,
                    "weights_detail": result.view.teacher.weights.detail,
                    "warning": result.view.teacher.weights.warning},
        "settings": settings,
        "seconds": run.seconds,
        "versions": package_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_result(result: ClassifyRun, settings: dict, out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "classification.json"
    path.write_text(json.dumps(result_dict(result, settings), indent=2))
    return path
