"""The Test-time classification page's pieces: its settings, the picture CLIP
sees, the controls and progress line of a run on the worker, and the results
(top-5s, probabilities over iterations, the field's islands, slides).

The page reads a run's `classify_job.ClassifyView`; the run trains in a worker
process (`ui.runs`), which also builds the CLIP and its text rows, so this
server never loads a CLIP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Optional

import numpy as np
import streamlit as st

from apm_viz.classify import DEFAULT_RECIPE, RECIPES, recipe
from apm_viz.classify_job import classify_job
from apm_viz.clip import CLIP_MODELS, DEFAULT_CLIP, input_size
from apm_viz.corruptions import CLEAN, CORRUPTIONS, SEVERITIES, Applied
from apm_viz.errors import ApmVizError
from apm_viz.evaluate import EvalSettings
from apm_viz.figures.classification import classification_slide, curves_figure, curves_slide, topk_figure
from apm_viz.figures.maps import island_map_figure
from apm_viz.islands import ProjectionConfig, count_islands, project
from apm_viz.labels import TEMPLATE_SETS, keep_label_file
from apm_viz.names import safe_stem
from apm_viz.worker import Handle

from . import runs
from .downloads import figure_button, slide_options
from .sidebar import Choice
from .weights import PENDING, weights_choice

PAGE = "classify"
LABEL_SETS = {"cifar10": "CIFAR-10 (10 classes)", "imagenet": "ImageNet-1k (1000)", "file": "My label file"}
TEMPLATE_TEXT = {"openai": "openai (80 prompts per class)", "simple": "simple (7)", "single": "single (1)"}
RANDOM_HEADLINE = "Random weights: these predictions are chance and mean nothing."
NO_BAR = {"displayModeBar": False}


@dataclass(frozen=True)
class Setup:
    """What decides a run: the settings, and the picture CLIP sees (with what made it)."""

    settings: EvalSettings
    clip_image: np.ndarray
    clean: np.ndarray
    applied: Applied
    key: Hashable


def _labels() -> Optional[str]:
    kind = st.radio("Labels", list(LABEL_SETS), format_func=LABEL_SETS.get, key="cls_labels")
    if kind != "file":
        return kind
    up = st.file_uploader("Label file (UTF-8, one label per line)", type=["txt"], key="cls_label_file",
                          max_upload_size=2)
    if up is None:
        st.caption("Upload a text file: one class name per line; # starts a comment.")
        return None
    try:
        return str(keep_label_file(up.getvalue(), up.name))
    except ApmVizError as err:
        st.error(str(err))
        return None


def _weights() -> tuple[Optional[str], bool]:
    """(weights for `create_clip`, ok): None = automatic, "random", or a file in the weights folder."""
    weights = weights_choice("CLIP weights", "Automatic (cache, hub, else random)", "cls_", "",
                             empty="put open_clip's .safetensors or .bin there.")
    return (None, False) if weights is PENDING else (weights, True)


@st.cache_data(max_entries=32, show_spinner="Preparing the picture CLIP sees…")
def _picture(sha: str, size: int, corruption: str, severity: int, seed: int, _image) -> tuple[np.ndarray, Applied]:
    from apm_viz.classify import prepare

    return prepare(_image, size, corruption, severity, seed)


def setup(choice: Choice) -> Optional[Setup]:
    """The settings row (labels, CLIP, weights, recipe, corruption); None when an input is bad
    (its one line is on screen)."""
    ss = st.session_state
    for key, value in (("cls_templates", "simple"), ("cls_severity", 5)):
        ss.setdefault(key, value)  # defaults through the state, so a value set before the first run wins
    c = st.columns([1.2, 1.4, 1.3, 1.1, 1.3])
    with c[0]:
        labels = _labels()
        templates = st.selectbox("Prompt templates", TEMPLATE_SETS,
                                 format_func=TEMPLATE_TEXT.get, key="cls_templates",
                                 help="Averaged per class. On a CPU, many prompts take minutes (cached once built).")
    with c[1]:
        clip = st.selectbox("CLIP", list(CLIP_MODELS), index=list(CLIP_MODELS).index(DEFAULT_CLIP),
                            format_func=lambda k: CLIP_MODELS[k].title, key="cls_clip")
        weights, weights_ok = _weights()
    with c[2]:
        name = st.radio("Recipe", list(RECIPES), index=list(RECIPES).index(DEFAULT_RECIPE), key="cls_recipe",
                        horizontal=True,
                        help="laptop: the small APM at a constant 1e-4; paper: the authors' TTT MLP, "
                             "N(0, 0.01) init, Adam 1e-4 stepped x0.1 every 200 iterations")
        ss.setdefault(f"cls_iters_{name}", RECIPES[name].iters)
        iters = int(st.number_input("TTT iterations", 1, 5000, step=10, key=f"cls_iters_{name}"))
    with c[3]:
        corruption = st.selectbox("Corruption", (CLEAN,) + CORRUPTIONS, key="cls_corruption",
                                  format_func=lambda s: s.replace("_", " "))
        severity = st.select_slider("Severity", SEVERITIES, key="cls_severity",
                                    disabled=corruption == CLEAN)
    if labels is None or not weights_ok:
        return None
    severity = 0 if corruption == CLEAN else int(severity)
    try:
        size = input_size(clip)
        image = choice.image
        clean, _ = _picture(image.sha256, size, CLEAN, 0, choice.seed, image)
        clip_image, applied = (clean, Applied(CLEAN, 0)) if corruption == CLEAN else \
            _picture(image.sha256, size, corruption, severity, choice.seed, image)
    except ApmVizError as err:
        st.error(str(err))
        return None
    settings = EvalSettings(clip=clip, weights=weights, labels=labels, templates=templates, seed=choice.seed,
                            ttt=recipe(name, iters=iters, seed=choice.seed))
    with c[4]:
        pictures(clean, clip_image, applied)
    return Setup(settings, clip_image, clean, applied, (image.sha256, corruption, severity, settings))


def pictures(clean: np.ndarray, clip_image: np.ndarray, applied: Applied) -> None:
    """Clean beside corrupted (or the clean picture alone), as CLIP sees them."""
    if applied.name == CLEAN:
        st.image(clean, caption="what CLIP sees (clean)", width=200)
        return
    a, b = st.columns(2)
    a.image(clean, caption="clean", width="stretch")
    b.image(clip_image, caption=f"{applied.name.replace('_', ' ')} {applied.severity}", width="stretch")
    st.caption(f"Applied: {applied.label}" + (f". {applied.note}" if applied.note else ""))


def new_job(choice: Choice, s: Setup):
    return classify_job(s.key, s.clip_image, s.settings, s.applied, choice.image.name, choice.image.sha256)


def controls(run: Optional[Handle], s: Optional[Setup], choice: Choice) -> Optional[Handle]:
    """Run, Pause and Stop; returns this session's run (new when Run started one)."""
    c = st.columns([1, 1, 1, 4])
    fresh = run is None or run.status in ("cancelled", "failed")
    if c[0].button("Run", icon=":material/play_arrow:", type="primary", width="stretch",
                   disabled=s is None or (run is not None and run.status in ("done", "running", "queued"))):
        if fresh:
            run = runs.start(PAGE, s.key, lambda: new_job(choice, s))
        else:
            run.resume()
    if c[1].button("Pause", icon=":material/pause:", width="stretch",
                   disabled=not runs.is_live(run) or run.status not in ("running", "queued")):
        run.pause()
    if c[2].button("Stop", icon=":material/stop:", width="stretch", disabled=not runs.is_live(run),
                   help="Stop training; what is done so far stays on screen"):
        run.cancel()
    return run


def drawn_state(h: Optional[Handle]) -> tuple:
    """What the results depend on: a new state, CLIP's record or a new snapshot redraws them."""
    if h is None:
        return ()
    r = h.view.result
    return h.id, h.status, r is not None, 0 if r is None else len(r.run.snapshots)


def progress_line(h: Optional[Handle]) -> None:
    """The run's progress; while it is live it polls, and reruns the page when something is new."""
    if h is not None:
        runs.progress(h, _line, drawn_state, key="cls-progress")


def _line(h: Handle) -> None:
    v = h.view
    if v.phase == "text classifier":
        text = f"text classifier: {v.done}/{v.total} classes"
        frac = 0.1 * v.done / max(v.total, 1)
    elif v.result is None:
        text, frac = f"{v.phase}…" if v.phase != "waiting" else "waiting for a worker", 0.0
    else:
        losses = v.result.run.losses
        loss = f"{losses[-1][1]:.3e}" if losses else "—"
        text, frac = f"iteration {v.iteration}/{v.config.iters} · loss {loss}", 0.1 + 0.9 * v.fraction
    st.progress(min(frac, 1.0), text=text)
    said = runs.status_line(h)
    if said:
        (st.error if h.status == "failed" else st.caption)(said)
    elif h.status == "cancelled":
        st.info(v.message or "stopped")


def weights_notice(h: Optional[Handle], s: Optional[Setup]) -> None:
    """Says, before anything else, when the predictions mean nothing."""
    source = None if h is None or h.view.result is None else h.view.result.view.teacher.weights
    random = (source is not None and not source.pretrained) or (
        source is None and s is not None and s.settings.weights == "random")
    if random:
        st.warning(f"**{RANDOM_HEADLINE}** " + (source.warning if source is not None and source.warning else
                   "A random CLIP's image and text towers are random functions: accuracy is at chance."),
                   icon="⚠️")
    elif source is not None:
        st.success(f"CLIP weights — {source.label}", icon="✅")


def _iteration(h: Handle, n: int) -> int:
    ss = st.session_state
    if h.live and h.status == "running":
        st.caption("Showing the newest iteration; Pause to scrub.")
        return n - 1
    if ss.get("cls_iter") is None or ss["cls_iter"] > n - 1:
        ss["cls_iter"] = n - 1
    if n < 2:
        return 0
    return int(st.slider("TTT iteration", 0, n - 1, key="cls_iter"))


def _island_colors(h: Handle) -> tuple[list[int], list[np.ndarray]]:
    """The snapshots' iterations and their fields' colours (one aligned PCA), built once per snapshot count."""
    r = h.view.result
    store = st.session_state.setdefault("cls_colors", {})
    key = (id(h.view), len(r.run.snapshots))
    if key not in store:
        snaps = list(r.run.snapshots)
        store.clear()
        store[key] = ([s.iteration for s in snaps], project([s.field for s in snaps], ProjectionConfig(
            method="pca", dims=3)).colors if snaps else [])
    return store[key]


def _at(iterations: list[int], it: int) -> int:
    """The index of the last snapshot taken at or before iteration `it`."""
    return max([k for k, s in enumerate(iterations) if s <= it] or [0])


def results(h: Optional[Handle]) -> Optional[int]:
    """Both top-5s at the chosen iteration, the probabilities over iterations and the field's islands;
    returns the iteration shown (None before there is one)."""
    if h is None or h.view.result is None or not h.view.result.globals:
        st.caption("Press **Run**: CLIP classifies the picture zero-shot, then a fresh APM is trained on it "
                   "(the token loss: its global output learns CLIP's image embedding) and classified the same way "
                   "at every iteration.")
        return None
    r = h.view.result
    it = _iteration(h, r.iterations)
    with st.container(key="cls-topk"):
        st.plotly_chart(topk_figure(r, it), config=NO_BAR, key="cls_topk_chart")
    left, right = st.columns([3, 2])
    left.plotly_chart(curves_figure(r, current=it), config=NO_BAR, key="cls_curves_chart")
    iterations, colors = _island_colors(h)
    if not iterations:
        return it
    with right:
        k = _at(iterations, it)
        snap = r.run.snapshots[k]
        n = count_islands(snap.field)
        st.plotly_chart(island_map_figure(colors[k], f"APM field, iteration {iterations[k]} · {n} islands", size=320),
                        config=NO_BAR, key="cls_map_chart")
        st.caption("PCA colours of the APM's output field at the last snapshot up to this iteration. The token "
                   "loss supervises only the global output" + (
                       "; with a random CLIP these islands follow the positional code, not the image's parts."
                       if not r.view.teacher.weights.pretrained else "."))
    return it


def export(h: Optional[Handle], s: Optional[Setup], it: Optional[int]) -> None:
    """Slides of a finished (or stopped) run: the classification row and the curves, built on click."""
    if h is None or it is None or h.live:
        return
    r = h.view.result
    iterations, colors = _island_colors(h)
    k = _at(iterations, it) if iterations else None
    clean = None if s is None else s.clean
    note = "random weights: chance" if not r.view.teacher.weights.pretrained else ""
    with st.expander("Export for slides"):
        style, fmt, dpi = slide_options("cls_export")
        stem = safe_stem(r.image_name, "image")
        a, b = st.columns(2)
        figure_button("Top-5 slide", lambda st_: classification_slide(r, it, st_, clean, None if k is None else colors[k],
                                                                         note), fmt,
                      style, dpi, f"{stem}-classification-it{it:04d}.{fmt}", "cls_dl_slide", a)
        figure_button("Probabilities", lambda st_: curves_slide(r, st_, current=it), fmt, style, dpi,
                      f"{stem}-probabilities.{fmt}", "cls_dl_curves", b)
