"""Class-name sets and prompt templates for zero-shot classification.

A `LabelSet` is the list of class names a CLIP text tower turns into one
classifier row each (template-averaged). Sets: CIFAR-10, ImageNet-1k (the
class names open_clip ships, `open_clip.zero_shot_metadata`), or a text file
of labels, one per line. Templates: open_clip's 80 OpenAI ImageNet prompts,
its 7 "simple" ones, or the single "a photo of a {}.".
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from .errors import ApmVizError

#: CIFAR-10's classes in its label order (0 airplane ... 9 truck).
CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
BUILTIN = ("cifar10", "imagenet")
TEMPLATE_SETS = ("openai", "simple", "single")
#: A label file larger than this is not a list of class names.
MAX_FILE_BYTES = 2 * 2**20
MAX_LABELS = 50_000


@dataclass(frozen=True)
class LabelSet:
    """Class names in classifier order.

    name: "cifar10", "imagenet" or the file's name.
    names: one display name per class; index i is class i.
    """

    name: str
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)

    def index(self, label: str) -> int:
        """The class index of a label (exact match, then case- and space-insensitive)."""
        try:
            return self.names.index(label)
        except ValueError:
            pass
        key = _norm(label)
        for i, n in enumerate(self.names):
            if _norm(n) == key:
                return i
        raise ApmVizError(f"unknown label {label!r}: not one of the {len(self)} classes of {self.name}")

    @property
    def digest(self) -> str:
        return hashlib.sha256("\n".join(self.names).encode()).hexdigest()[:16]


def _norm(s: str) -> str:
    return " ".join(s.replace("_", " ").lower().split())


def load_labels(spec: Union[str, os.PathLike]) -> LabelSet:
    """'cifar10', 'imagenet', or a path to a UTF-8 text file with one label per line.

    Blank lines and lines starting with '#' are skipped. Duplicates, an empty
    list, binary or oversized files raise ApmVizError with one line.
    """
    text = str(spec)
    if text.lower() == "cifar10":
        return LabelSet("cifar10", CIFAR10)
    if text.lower() in ("imagenet", "imagenet1k", "imagenet-1k"):
        from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

        return LabelSet("imagenet", tuple(IMAGENET_CLASSNAMES))
    path = Path(spec)
    if not path.is_file():
        raise ApmVizError(f"labels: {text!r} is neither cifar10, imagenet nor a text file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ApmVizError(f"{path.name}: a label file is at most {MAX_FILE_BYTES // 2**20} MB")
    data = path.read_bytes()
    if b"\x00" in data:
        raise ApmVizError(f"{path.name}: not a text file of labels (binary data)")
    try:
        lines = data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise ApmVizError(f"{path.name}: not UTF-8 text; save the labels as UTF-8, one per line") from None
    names = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    if len(names) < 2:
        raise ApmVizError(f"{path.name}: needs at least two labels, one per line (found {len(names)})")
    if len(names) > MAX_LABELS:
        raise ApmVizError(f"{path.name}: {len(names)} labels; at most {MAX_LABELS}")
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if _norm(n) in seen:
            raise ApmVizError(f"{path.name}: label {n!r} appears twice (lines {seen[_norm(n)] + 1} and {i + 1} "
                              "of the labels)")
        seen[_norm(n)] = i
    return LabelSet(path.name, tuple(names))


def keep_label_file(data: bytes, name: str = "labels.txt") -> Path:
    """Store an uploaded label file where every process of this machine can read it
    ($APM_VIZ_CACHE_DIR/labels/<content hash>/<name>) and check it: returns its path,
    or raises ApmVizError with one line, as `load_labels` does."""
    import hashlib
    import re

    root = Path(os.environ.get("APM_VIZ_CACHE_DIR", Path.home() / ".cache" / "apm-viz")) / "labels"
    clean = re.sub(r"[^\w.-]+", "_", Path(str(name)).name).strip("._")[:60] or "labels.txt"
    if len(data) > MAX_FILE_BYTES:
        raise ApmVizError(f"{clean}: a label file is at most {MAX_FILE_BYTES // 2**20} MB")
    path = root / hashlib.sha256(data).hexdigest()[:16] / clean
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    load_labels(path)
    return path


def templates(kind: str = "openai") -> tuple[str, ...]:
    """Prompt templates as format strings with one '{}' for the class name.

    openai: open_clip's OPENAI_IMAGENET_TEMPLATES (80, as in the CLIP paper);
    simple: its SIMPLE_IMAGENET_TEMPLATES (7); single: "a photo of a {}.".
    """
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

    if kind == "single":
        return ("a photo of a {}.",)
    table = {"openai": OPENAI_IMAGENET_TEMPLATES, "simple": SIMPLE_IMAGENET_TEMPLATES}
    if kind not in table:
        raise ApmVizError(f"unknown templates {kind!r}; choose one of {', '.join(TEMPLATE_SETS)}")
    # open_clip ships them as one-argument lambdas; a marker turns each into a format string.
    return tuple(t("\x00").replace("{", "{{").replace("}", "}}").replace("\x00", "{}") for t in table[kind])


def prompts(label: str, kind: str = "openai") -> list[str]:
    """Every prompt of a template set for one class name."""
    return [t.format(label) for t in templates(kind)]
