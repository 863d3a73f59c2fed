"""The shared sidebar: image source, teacher and its weights, preset, grid, loss, seed.

Bad input (an unreadable upload, a wrong weights file) shows one line and the
previous good choice stays in use, so nothing computed is lost.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import streamlit as st

from apm_viz.errors import ApmVizError
from apm_viz.images import LoadedImage, load_image
from apm_viz.model import PRESETS
from apm_viz.teachers import DEFAULT_TEACHER, TEACHERS, Teacher, TeacherOutput
from apm_viz.weights import list_weights, resolve_weights_path, weights_folder

from .cache import get_teacher, get_teacher_output
from .uploads import image_uploader

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SAMPLES = sorted(p.name for p in ASSETS.glob("*.jpg"))
WEIGHT_MODES = ("Automatic (cache, hub, else random)", "Local file", "Random init")
LOSSES = {"auto": "Automatic", "token": "token (the paper's islands)", "grid": "grid (dense distillation)",
          "grid+rgb": "grid + rgb"}


@dataclass(frozen=True)
class Choice:
    """What the sidebar decided. `teacher_key` identifies the teacher for caches."""

    image: LoadedImage
    teacher: Teacher
    teacher_key: tuple
    grid: int
    preset: str
    loss: str
    seed: int

    @property
    def key(self) -> tuple:
        return (self.image.sha256, self.teacher_key, self.grid, self.preset, self.loss, self.seed)


def _image() -> Optional[LoadedImage]:
    ss = st.session_state
    source = st.radio("Image", ("Sample", "Upload"), horizontal=True, key="image_source")
    if source == "Sample":
        name = st.selectbox("Sample", SAMPLES, key="sample", index=SAMPLES.index("chelsea.jpg")
                            if "chelsea.jpg" in SAMPLES else 0)
        loaded = _load_sample(name)
        ss["good_image"] = loaded
    else:
        up = image_uploader("Upload an image", key="upload")
        if up is not None and ss.get("upload_id") != up.file_id:
            ss["upload_id"] = up.file_id
            try:
                ss["good_image"] = load_image(up.getvalue(), name=up.name)
                ss.pop("image_error", None)
            except ApmVizError as err:
                ss["image_error"] = str(err)
        if ss.get("image_error"):
            st.error(ss["image_error"])
    return ss.get("good_image")


@st.cache_data(max_entries=16)
def _load_sample(name: str) -> LoadedImage:
    return load_image(ASSETS / name)


def _teacher(seed: int) -> tuple[Optional[Teacher], Optional[tuple]]:
    ss = st.session_state
    names = list(TEACHERS)
    name = st.selectbox("Teacher", names, index=names.index(DEFAULT_TEACHER), key="teacher_name",
                        format_func=lambda n: f"{n} · {TEACHERS[n].family_info.name}")
    mode = st.radio("Teacher weights", WEIGHT_MODES, key="weights_mode")
    weights: Optional[str] = None
    allow_download = True
    if mode == "Local file":
        files = list_weights()
        folder = weights_folder()
        if files:
            typed = st.selectbox(f"File in {folder}", files, key="weights_file")
        else:
            typed = st.text_input(f"File name in {folder}", key="weights_typed",
                                  help="Put the teacher's weights (.safetensors or .pth; timm's or the "
                                       "publisher's file, e.g. Meta's DINOv3 .pth) in this folder.")
        try:
            weights = str(resolve_weights_path(typed)) if typed else None
        except ApmVizError as err:
            st.error(str(err))
            weights = None
        if weights is None:
            return ss.get("good_teacher"), ss.get("good_teacher_key")
    elif mode == "Random init":
        weights = "random"
    key = (name, weights, allow_download, seed)
    # A file that failed is not read (nor the model rebuilt) again on every rerun,
    # only once it changes on disk or another choice is made.
    attempt = (key, _file_stamp(weights))
    failed = ss.get("teacher_failed")
    if failed is not None and failed[0] == attempt:
        st.error(failed[1])
        return ss.get("good_teacher"), ss.get("good_teacher_key")
    try:
        teacher = get_teacher(*key)
        ss["good_teacher"], ss["good_teacher_key"] = teacher, key
        ss.pop("teacher_failed", None)
    except ApmVizError as err:
        message = f"{err} — keeping the previous teacher."
        ss["teacher_failed"] = (attempt, message)
        st.error(message)
    return ss.get("good_teacher"), ss.get("good_teacher_key")


def _file_stamp(weights: Optional[str]) -> Optional[tuple]:
    if weights in (None, "random"):
        return None
    try:
        info = os.stat(weights)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


def render() -> Optional[Choice]:
    """Draw the sidebar; returns the current choice, or None before any image exists."""
    with st.sidebar:
        image = _image()
        st.divider()
        seed = int(st.number_input("Seed", 0, 2**31 - 1, 0, key="seed"))
        teacher, teacher_key = _teacher(seed)
        if teacher is not None:
            if teacher.weights.pretrained:
                st.success(f"Teacher weights — {teacher.weights.label}", icon="✅")
            else:
                st.warning(f"Teacher weights — {teacher.weights.label}", icon="⚠️")
            st.caption(f"{teacher.family.name}: patch {teacher.patch} px, width {teacher.dim}, global vector: "
                       + ("the attention-pooling (MAP) head" if teacher.family.global_vector == "map"
                          else "the class token"))
        grid = st.radio("Grid", (16, 32), index=1, horizontal=True, key="grid",
                        format_func=lambda g: f"{g}x{g} ({teacher.pixels(g)} px)" if teacher else f"{g}x{g}",
                        help="Pixels per side = grid x the teacher's patch"
                             + (f" ({teacher.patch} px for {teacher.name})." if teacher else "."))
        preset = st.selectbox("APM preset", list(PRESETS), index=list(PRESETS).index("laptop"), key="preset",
                              help="laptop: seconds on a CPU; paper / paper-ttt: the paper's sizes (GPU-sized)")
        loss = st.selectbox("Supervision", list(LOSSES), format_func=LOSSES.get, key="loss")
        if loss == "auto" and teacher is not None:
            loss = "token" if teacher.weights.pretrained else "grid"
            st.caption(f"Automatic → **{loss}**: " + (
                "the paper's islands experiment (only the teacher's CLS token is supervised)."
                if loss == "token" else
                "with a random teacher, token supervision only shows positional-code blocks; "
                "the grid carries the image's structure."))
    if image is None or teacher is None:
        return None
    if teacher.weights.warning:
        st.warning(teacher.weights.warning, icon="⚠️")
    return Choice(image, teacher, teacher_key, grid, preset, loss, seed)


def teacher_output(choice: Choice) -> TeacherOutput:
    return get_teacher_output(choice.image.sha256, choice.teacher_key, choice.grid, choice.image, choice.teacher)
