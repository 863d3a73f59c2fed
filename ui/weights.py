"""The weights choice of a model (the sidebar's teacher, the Boring video
page's MViTv2, the classification page's CLIP): automatic, a file in the
weights folder, or random init."""

from __future__ import annotations

from typing import Optional

import streamlit as st

from apm_viz.errors import ApmVizError
from apm_viz.weights import list_weights, resolve_weights_path, weights_folder

LOCAL, RANDOM = "Local file", "Random init"
#: A local file is asked for but none is named yet, or the name is bad: keep the model you had.
PENDING = object()


def weights_choice(label: str, automatic: str, key: str, hint: str, radio_at=st, file_at=st,
                   empty: Optional[str] = None):
    """The radio (`automatic` names what the automatic order is) and, for a
    local file, the file picker of the weights folder; widget keys
    `{key}weights_mode`, `{key}weights_file`, `{key}weights_typed`. An empty
    folder gives a field for a file name (`hint` says what to put there), or,
    with `empty`, that one line as an error.

    Returns None (automatic), "random", the file's path, or `PENDING` (a bad
    name's error is shown in `file_at`)."""
    mode = radio_at.radio(label, (automatic, LOCAL, RANDOM), key=f"{key}weights_mode")
    if mode == RANDOM:
        return "random"
    if mode != LOCAL:
        return None
    folder, files = weights_folder(), list_weights()
    if files:
        typed = file_at.selectbox(f"File in {folder}", files, key=f"{key}weights_file")
    elif empty is not None:
        file_at.error(f"No weights files in {folder}: {empty}")
        return PENDING
    else:
        typed = file_at.text_input(f"File name in {folder}", key=f"{key}weights_typed", help=hint)
    if not typed:
        return PENDING
    try:
        return str(resolve_weights_path(typed))
    except ApmVizError as err:
        file_at.error(str(err))
        return PENDING
