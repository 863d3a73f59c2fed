"""Process-wide caches: models are built once per process and the teacher's
view of an image once per image, teacher and grid. (Finished runs are kept by
the run manager's store, `ui.runs`.)"""

from __future__ import annotations

from typing import Optional

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
