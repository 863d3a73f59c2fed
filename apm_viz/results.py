"""Results of a many-item run on disk: DIR/results.jsonl and DIR/run.json.

Rows go to DIR/results.jsonl, one JSON object a line, flushed and synced as
they arrive (in any order): an interrupted run keeps every finished row, and
a second run skips the ids already written. DIR/run.json pins the settings:
resuming with other settings is refused. `rows()` sorts by id, so a summary
does not depend on the order rows finished in, nor on which runner made them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Iterable, Iterator

from .errors import ApmVizError
from .provenance import package_versions

RESULTS, RUN = "results.jsonl", "run.json"


class ResultsFile:
    """DIR/results.jsonl: append-only rows, one JSON object a line, synced per row.

    A line cut short by a crash is dropped on open (the file is truncated to
    its last complete line), so it is recomputed. A second row with an id
    already written is ignored: the first row stands.
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


def pending(all_items: Iterable, results: ResultsFile) -> Iterator:
    """The items (anything with an `id`) whose rows are not yet written."""
    done = results.done
    return (it for it in all_items if it.id not in done)


def pin(out_dir: Path, settings: dict, **source) -> None:
    """Write DIR/run.json (settings, where the items come from, versions), or
    refuse when it names other settings."""
    path = Path(out_dir) / RUN
    settings = json.loads(json.dumps(settings))  # tuples as lists, as they come back from the file
    if path.exists():
        try:
            theirs = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            raise ApmVizError(f"{path}: unreadable; use another --out folder") from None
        old = theirs.get("settings", {})
        diff = [k for k in sorted(set(settings) | set(old)) if settings.get(k) != old.get(k)]
        if diff:
            raise ApmVizError(f"{out_dir} holds results made with other settings ({', '.join(diff)}); "
                              "use another --out folder to start afresh")
        return
    record = {"settings": settings, **source, "versions": package_versions(),
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path.write_text(json.dumps(record, indent=2))
