"""The store of finished run results: views by key, bounded in bytes, least
recently used dropped first (`worker.RunManager` keeps its finished runs here).

A view held here keeps only what pages and exports read, never a trainer.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

#: Environment: bytes (or 512M, 2G) the store of finished results may hold.
STORE_ENV = "APM_VIZ_STORE_BYTES"
DEFAULT_STORE_BYTES = 512 * 2**20


def store_limit() -> int:
    text = os.environ.get(STORE_ENV, "").strip()
    if not text:
        return DEFAULT_STORE_BYTES
    from .ttt import _parse_bytes

    return _parse_bytes(text)


class Store:
    """Finished views by key, least recently used dropped first, bounded in bytes
    (`view.nbytes`). A view larger than the whole bound is not kept."""

    def __init__(self, capacity_bytes: int):
        self.capacity = int(capacity_bytes)
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key, view) -> None:
        if int(view.nbytes) > self.capacity:
            return
        with self._lock:
            self._items[key] = view
            self._items.move_to_end(key)
            while self._items and self.nbytes > self.capacity:
                self._items.popitem(last=False)

    @property
    def nbytes(self) -> int:
        return sum(int(v.nbytes) for v in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key) -> bool:
        return key in self._items
