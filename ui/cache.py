"""Process-wide caches: models are built once per process, finished results
are shared between sessions (they are deterministic given their key)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Optional

import streamlit as st

from apm_viz.images import LoadedImage
from apm_viz.pipeline import encode
from apm_viz.teachers import Teacher, TeacherOutput, create_teacher


@st.cache_resource(max_entries=3, show_spinner="Building the teacher…")
def get_teacher(name: str, weights: Optional[str], allow_download: bool, seed: int) -> Teacher:
    """A teacher of the registry; raises ApmVizError for a bad weights file (not cached)."""
    return create_teacher(name, weights, allow_download=allow_download, seed=seed)


@st.cache_data(max_entries=32, show_spinner="The teacher looks at the image…")
def get_teacher_output(image_sha: str, teacher_key: tuple, grid: int, _image: LoadedImage,
                       _teacher: Teacher) -> TeacherOutput:
    """The teacher's patch grid for one image, keyed by image hash, teacher and grid."""
    return encode(_image, _teacher, grid)


class BoundedStore:
    """A small thread-safe LRU dict shared by all sessions of this process."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


@st.cache_resource
def finished_films() -> BoundedStore:
    """Finished islands films, keyed by image hash + every setting that decides them."""
    return BoundedStore(capacity=8)
