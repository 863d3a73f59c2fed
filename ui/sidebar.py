"""The shared sidebar: image source, teacher and its weights, preset, grid, supervision,
query, seed, and an "Advanced" part with every other engine option of a run.

Bad input (an unreadable upload, a wrong weights file) shows one line and the
previous good choice stays in use, so nothing computed is lost.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import streamlit as st

from apm_viz.errors import ApmVizError
from apm_viz.images import LoadedImage, load_image
from apm_viz.model import PRESETS
from apm_viz.recipes import QUERIES, QUERY_CAN_SHOW, islands_config, resolve_loss, resolve_query
from apm_viz.teachers import DEFAULT_TEACHER, TEACHERS, Teacher, TeacherOutput
from apm_viz.ttt import TTTConfig

from .cache import get_teacher, get_teacher_output
from .uploads import image_uploader
from .weights import PENDING, weights_choice

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SAMPLES = sorted(p.name for p in ASSETS.glob("*.jpg"))
LOSSES = {"auto": "Automatic", "token": "token (the paper's islands)", "grid": "grid (dense distillation)",
          "grid+rgb": "grid + rgb"}
QUERY_LABELS = {"auto": "the recipe's", "figure": f"{QUERIES['figure']} (the paper's figure)",
                "authors": f"{QUERIES['authors']} (the authors' code)"}
#: The Islands page's recipe toggle keeps its value here, so every page's choice knows it.
RECIPE_KEY = "recipe"


@dataclass(frozen=True)
class Advanced:
    """Engine options of a run that the sidebar's "Advanced" part sets; None keeps the recipe's."""

    pooling: Optional[str] = None
    init_std: Optional[float] = None  # 0: PyTorch's default init
    lr: Optional[float] = None
    lr_step: Optional[int] = None  # 0: constant


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
    query: str = "auto"
    recipe: str = "aligned"
    advanced: Advanced = Advanced()

    @property
    def key(self) -> tuple:
        return (self.image.sha256, self.teacher_key, self.grid, self.preset, self.loss, self.seed, self.query,
                self.recipe, self.advanced)

    def ttt_config(self, iters: Optional[int] = None) -> TTTConfig:
        """The islands run this choice asks for (`recipes.islands_config`, the command line's rule)."""
        a = self.advanced
        cfg = islands_config(self.loss, self.query, self.recipe, preset=self.preset, iters=iters, seed=self.seed,
                             pooling=a.pooling, lr=a.lr)
        if a.init_std is not None:
            cfg = replace(cfg, init_std=a.init_std or None)
        if a.lr_step is not None:
            cfg = replace(cfg, lr_step=a.lr_step or None)
        return cfg


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
    weights = weights_choice("Teacher weights", "Automatic (cache, hub, else random)", "",
                             "Put the teacher's weights (.safetensors or .pth; timm's or the publisher's file, "
                             "e.g. Meta's DINOv3 .pth) in this folder.")
    if weights is PENDING:
        return ss.get("good_teacher"), ss.get("good_teacher_key")
    allow_download = True
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


#: The Grid choices and the one a new session starts with.
GRIDS, DEFAULT_GRID = (16, 32), 32


def default_teacher_key(name: str) -> tuple:
    """The key `_teacher` builds for `name` before anything is changed (Automatic weights, seed 0)."""
    return (name, None, True, 0)


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
        grid = st.radio("Grid", GRIDS, index=GRIDS.index(DEFAULT_GRID), horizontal=True, key="grid",
                        format_func=lambda g: f"{g}x{g} ({teacher.pixels(g)} px)" if teacher else f"{g}x{g}",
                        help="Pixels per side = grid x the teacher's patch"
                             + (f" ({teacher.patch} px for {teacher.name})." if teacher else "."))
        preset = st.selectbox("APM preset", list(PRESETS), index=list(PRESETS).index("laptop"), key="preset",
                              help="laptop: seconds on a CPU; paper / paper-ttt: the paper's sizes (GPU-sized)")
        loss = st.selectbox("Supervision", list(LOSSES), format_func=LOSSES.get, key="loss")
        if loss == "auto":
            loss = resolve_loss(loss)
            st.caption(f"Automatic → **{loss}**, for every teacher and weight source: the paper's islands "
                       "experiment (only the teacher's global token is supervised).")
        recipe = st.session_state.get(RECIPE_KEY, "aligned")
        query = st.radio("Query at each location", list(QUERY_LABELS), format_func=QUERY_LABELS.get, key="query",
                         help="The recipe's: the figure's for this project's recipe, the authors' for theirs")
        st.caption(QUERY_CAN_SHOW[resolve_query(query, recipe)])
        advanced = _advanced()
    if image is None or teacher is None:
        return None
    if teacher.weights.warning:
        st.warning(teacher.weights.warning, icon="⚠️")
    return Choice(image, teacher, teacher_key, grid, preset, loss, seed, query, recipe, advanced)


def _advanced() -> Advanced:
    """Pooling, initialisation, learning rate and its schedule; each "recipe's" until set."""
    with st.expander("Advanced"):
        st.caption("Islands runs only; \"recipe's\" keeps what the recipe on the Islands page sets.")
        pooling = st.selectbox("Pooling to the global output", (None, "mean", "attention"), key="adv_pooling",
                               format_func=lambda p: {None: "recipe's", "mean": "mean",
                                                      "attention": "attention (8 heads)"}[p])
        init = st.selectbox("Initialisation", ("recipe's", "PyTorch default", "N(0, std)"), key="adv_init")
        init_std = {"recipe's": None, "PyTorch default": 0.0}.get(init)
        if init == "N(0, std)":
            init_std = float(st.number_input("std", 1e-4, 1.0, 0.01, step=0.005, format="%.4f", key="adv_std"))
        lr = None
        if st.checkbox("Set the learning rate", key="adv_set_lr"):
            lr = float(st.number_input("Adam learning rate", 1e-6, 1e-1, 1e-4, format="%.1e", key="adv_lr"))
        schedule = st.selectbox("Learning-rate schedule", ("recipe's", "constant", "x0.1 every N iterations"),
                                key="adv_schedule")
        lr_step = {"recipe's": None, "constant": 0}.get(schedule)
        if schedule.startswith("x0.1"):
            lr_step = int(st.number_input("N", 10, 5000, 200, step=10, key="adv_step"))
    return Advanced(pooling, init_std, lr, lr_step)


def teacher_line(choice: Choice) -> str:
    """One line naming the teacher, its patch and pixel size, and where its weights came from."""
    t = choice.teacher
    return (f"Teacher: {t.name} ({t.family.name}, patch {t.patch}, {t.pixels(choice.grid)} px for "
            f"{choice.grid}x{choice.grid}) · weights: {t.weights.label}")


def teacher_output(choice: Choice) -> TeacherOutput:
    return get_teacher_output(choice.image.sha256, choice.teacher_key, choice.grid, choice.image, choice.teacher)
