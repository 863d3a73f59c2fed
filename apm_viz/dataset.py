"""Labelled image sets for evaluation: find the images and their classes.

Three layouts:
- an ImageFolder tree: DATASET/<label>/<image>, class folders named by label
  (case, spaces and underscores do not matter);
- a CSV of path,label (paths relative to the CSV's folder; a header row
  "path,label" is optional);
- the official ImageNet-C tree, already corrupted:
  DATASET/<corruption>/<severity>/<class>/<image>. Its images are read as
  they are, never corrupted again.
ImageNet class folders may be WordNet ids (n01440764, ...): all 1000 of them
map to the ImageNet-1k classes in sorted order, the standard class index.

Nothing here opens an image: a file that is not readable becomes an error
row when it is evaluated, and the evaluation goes on.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .corruptions import CLEAN, CORRUPTIONS, SEVERITIES
from .errors import ApmVizError
from .labels import LabelSet

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
WNID = re.compile(r"^n\d{8}$")


@dataclass(frozen=True)
class Entry:
    """One labelled image of a data set.

    rel: its path relative to the data set (POSIX), a stable name.
    label_index: the class index in the label set.
    corruption, severity: set for images of a pre-corrupted (ImageNet-C) tree.
    """

    path: Path
    rel: str
    label: str
    label_index: int
    corruption: Optional[str] = None
    severity: Optional[int] = None


@dataclass(frozen=True)
class Dataset:
    root: Path
    layout: str  # "folder", "csv" or "imagenet-c"
    entries: tuple[Entry, ...]

    @property
    def pre_corrupted(self) -> bool:
        return self.layout == "imagenet-c"


def list_images(folder: Path) -> list[Path]:
    """Image files under `folder` (any depth), by their suffix, sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _class_map(names: list[str], labels: LabelSet, where: str) -> dict[str, int]:
    """Folder names -> class indices; WordNet ids by the sorted 1000 when the set is ImageNet."""
    if names and all(WNID.match(n) for n in names):
        if labels.name != "imagenet" or len(set(names)) != len(labels):
            raise ApmVizError(f"{where}: class folders are WordNet ids ({len(set(names))} of them); they map to "
                              "classes only as the complete 1000 of ImageNet with --labels imagenet (or give a CSV "
                              "of path,label)")
        return {n: i for i, n in enumerate(sorted(set(names)))}
    out = {}
    for n in names:
        try:
            out[n] = labels.index(n)
        except ApmVizError:
            raise ApmVizError(f"unknown label {n!r} (class folder {where}/{n}): not one of the {len(labels)} "
                              f"classes of {labels.name}") from None
    return out


def _folder(root: Path, labels: LabelSet, prefix: str = "", corruption: Optional[str] = None,
            severity: Optional[int] = None) -> list[Entry]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ApmVizError(f"{root}: no class folders (an ImageFolder tree has one folder per label)")
    index = _class_map(classes, labels, str(root))
    label_names = {c: (labels.names[index[c]]) for c in classes}
    out = []
    for c in classes:
        for p in list_images(root / c):
            rel = prefix + p.relative_to(root).as_posix()
            out.append(Entry(p, rel, label_names[c], index[c], corruption, severity))
    return out


def _is_imagenet_c(root: Path) -> bool:
    subs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return bool(subs) and all(p.name in CORRUPTIONS for p in subs) and all(
        any(q.is_dir() and q.name in {str(s) for s in SEVERITIES} for q in p.iterdir()) for p in subs)


def _csv(path: Path, labels: LabelSet) -> list[Entry]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise ApmVizError(f"{path.name}: not a readable UTF-8 CSV ({type(err).__name__})") from None
    rows = [r for r in csv.reader(text.splitlines()) if r and any(c.strip() for c in r)]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        rows = rows[1:]
    out = []
    for n, r in enumerate(rows, 1):
        if len(r) < 2 or not r[0].strip() or not r[1].strip():
            raise ApmVizError(f"{path.name}: row {n} is not path,label: {','.join(r)[:80]!r}")
        file, label = r[0].strip(), r[1].strip()
        try:
            index = labels.index(label)
        except ApmVizError:
            raise ApmVizError(f"unknown label {label!r} ({path.name} row {n}): not one of the {len(labels)} "
                              f"classes of {labels.name}") from None
        p = Path(file)
        p = p if p.is_absolute() else path.parent / p
        out.append(Entry(p, file, labels.names[index], index))
    return out


def scan(dataset, labels: LabelSet) -> Dataset:
    """Find every labelled image of a data set (see the module docstring for layouts).

    Raises ApmVizError (one line) for a missing folder or file, an unknown
    label, or a set with no images.
    """
    root = Path(dataset)
    if root.is_file() and root.suffix.lower() == ".csv":
        ds = Dataset(root, "csv", tuple(_csv(root, labels)))
    elif root.is_dir():
        if _is_imagenet_c(root):
            entries: list[Entry] = []
            for c in (c for c in CORRUPTIONS if (root / c).is_dir()):
                for s in SEVERITIES:
                    if (root / c / str(s)).is_dir():
                        entries += _folder(root / c / str(s), labels, f"{c}/{s}/", c, s)
            ds = Dataset(root, "imagenet-c", tuple(entries))
        else:
            ds = Dataset(root, "folder", tuple(_folder(root, labels)))
    elif root.exists():
        raise ApmVizError(f"{root}: a data set is a folder of class folders or a .csv of path,label")
    else:
        raise ApmVizError(f"no such data set: {root}")
    if not ds.entries:
        raise ApmVizError(f"{root}: no images found ({', '.join(IMAGE_SUFFIXES)})")
    return ds


def per_class(ds: Dataset, n: int) -> Dataset:
    """The first n images (by path) of each class; of each class per corruption and severity in a
    pre-corrupted tree."""
    kept, count = [], {}
    for e in sorted(ds.entries, key=lambda e: e.rel):
        key = (e.corruption, e.severity, e.label_index)
        if count.get(key, 0) < n:
            count[key] = count.get(key, 0) + 1
            kept.append(e)
    return Dataset(ds.root, ds.layout, tuple(kept))


def select(ds: Dataset, corruptions: list[str], severities: list[int]) -> list[tuple[Entry, str, int]]:
    """(entry, corruption, severity) to evaluate, in a stable order.

    A clean set is crossed with the corruptions asked for (clean: severity 0);
    a pre-corrupted set is filtered by them.
    """
    if ds.pre_corrupted:
        wanted = set(CORRUPTIONS) if corruptions == [CLEAN] else set(corruptions) - {CLEAN}
        picked = [(e, e.corruption, e.severity) for e in ds.entries
                  if e.corruption in wanted and e.severity in severities]
        if not picked:
            raise ApmVizError(f"{ds.root}: no pre-corrupted images for {', '.join(sorted(wanted))} at severity "
                              f"{', '.join(map(str, severities))}")
        return picked
    out = []
    for e in ds.entries:
        for c in corruptions:
            for s in ([0] if c == CLEAN else severities):
                out.append((e, c, s))
    return out
