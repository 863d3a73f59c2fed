"""The one image uploader of the app: every page offers the same file types
and the same size limit, the engine's (`apm_viz.images`)."""

from __future__ import annotations

import streamlit as st

from apm_viz.images import MAX_FILE_BYTES, UPLOAD_TYPES


def image_uploader(label: str, key: str, multiple: bool = False, **kwargs):
    """An `st.file_uploader` for images: `images.UPLOAD_TYPES`, at most
    `images.MAX_FILE_BYTES`. Returns an UploadedFile (a list when `multiple`) or None."""
    return st.file_uploader(label, type=list(UPLOAD_TYPES), accept_multiple_files=multiple, key=key,
                            max_upload_size=MAX_FILE_BYTES // 2**20, **kwargs)
