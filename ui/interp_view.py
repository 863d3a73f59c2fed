"""The Latent interpolation page's pieces: the images to learn, the walk's
settings, the fit's progress line, and the walk drawn from a finished fit.

A walk is computed once per fit and setting and kept in
`st.session_state["interp_walks"]` (`{"run": view, "walks": {walk key:
{"walk", "frames", "islands", "gif"}}}`), so moving the player's slider
computes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import streamlit as st

from apm_viz import interpolate as itp
from apm_viz.errors import ApmVizError
from apm_viz.figures.interpolation import interpolation_figure, walk_animation_bytes, walk_gif
from apm_viz.figures.maps import upscale
from apm_viz.images import LoadedImage, load_image
from apm_viz.names import safe_stem
from apm_viz.worker import Handle

from . import runs
from .downloads import animation_buttons, figure_button, slide_options
from .sidebar import SAMPLES, _load_sample
from .uploads import image_uploader

UPLOAD = "Upload…"
#: Pixels per picture in the strips and the player; nearest-neighbour, so grid cells stay sharp.
THUMB, LARGE = 96, 320


def pick(label: str, default: str, key: str) -> Optional[LoadedImage]:
    """A sample or an upload; a bad upload says why and gives nothing."""
    options = SAMPLES + [UPLOAD]
    name = st.selectbox(label, options, index=options.index(default) if default in options else 0, key=key)
    if name != UPLOAD:
        return _load_sample(name)
    up = image_uploader(f"{label}: upload", key=key + "_upload")
    if up is None:
        return None
    try:
        return load_image(up.getvalue(), name=up.name)
    except ApmVizError as err:
        st.error(str(err))
        return None


def images_to_learn() -> tuple[Optional[LoadedImage], Optional[LoadedImage], list[LoadedImage]]:
    """(A, B, every image the memory learns: A and B first, no image twice)."""
    cols = st.columns([2, 2, 3])
    with cols[0]:
        a = pick("Image A", "chelsea.jpg", "interp_a")
    with cols[1]:
        b = pick("Image B", "coffee.jpg", "interp_b")
    with cols[2]:
        names = st.multiselect("Also learn (optional)", SAMPLES, key="interp_more",
                               help="More images in the same memory; the walk still goes from A to B.")
        uploads = image_uploader("More uploads (optional)", key="interp_more_up", multiple=True)
    images = [im for im in (a, b) if im is not None] + [_load_sample(name) for name in names]
    for up in uploads or []:
        try:
            images.append(load_image(up.getvalue(), name=up.name))
        except ApmVizError as err:
            st.error(str(err))
    unique: dict[str, LoadedImage] = {}
    for im in images:
        unique.setdefault(im.sha256, im)
    return a, b, list(unique.values())


@dataclass(frozen=True)
class WalkOptions:
    n: int
    start: bool
    end: bool
    extrapolate: int
    dreams: int
    temperature: float
    method: str
    detail: int

    @property
    def key(self) -> tuple:
        return self.n, self.start, self.end, self.extrapolate, self.detail


def walk_options() -> WalkOptions:
    opts = st.columns(6)
    n = int(opts[0].slider("Steps n", 1, 32, 8, key="interp_n"))
    start = opts[1].checkbox("Include A (i = 0)", True, key="interp_start")
    end = opts[1].checkbox("Include B (i = n)", True, key="interp_end")
    extrapolate = int(opts[2].number_input("Extrapolate (steps past each end)", 0, 8, 0, key="interp_extra"))
    dreams = int(opts[3].number_input("Dreams", 0, 12, 0, key="interp_dreams",
                                      help="Random trigger columns drawn with the fitted columns' statistics"))
    temperature = opts[3].slider("Dream spread", 0.0, 3.0, 1.0, 0.1, key="interp_temp")
    method = opts[4].radio("Islands projection", ("PCA", "aligned t-SNE"), key="interp_projection")
    detail = int(opts[5].select_slider("Frame detail", (1, 2, 4), 1, key="interp_detail",
                                       help="Query the field between grid points: x2 decodes a 2h x 2w frame"))
    return WalkOptions(n, start, end, extrapolate, dreams, temperature, method, detail)


def fit_progress(h: Optional[Handle]) -> None:
    """The fit's progress; while it trains it polls, and reruns the page when its state changes."""
    if h is None:
        st.caption("Press **Fit** to teach one APM all the images above.")
    else:
        runs.progress(h, _fit_line, lambda h: (h.id, h.status))


def _fit_line(h: Handle) -> None:
    fit = h.view
    loss = f"{fit.run.losses[-1][1]:.3e}" if fit.run.losses else "—"
    st.progress(fit.fraction, text=f"iteration {fit.iteration}/{fit.run.config.iters} · loss {loss} · "
                f"{fit.run.seconds:.1f} s")
    said = runs.status_line(h)
    if said:
        st.caption(said)
    if fit.run.status == "diverged":
        st.error(fit.run.message)
    elif fit.run.status == "cancelled":
        st.info(f"{fit.run.message}: the walk below uses what the APM learned in {fit.iteration} iterations.")


def walk(view, opts: WalkOptions) -> dict:
    """The walk of this fit and these settings: {"walk", "frames", "islands"}, computed once.
    A walk the settings cannot make says why and ends this script run."""
    state = st.session_state.setdefault("interp_walks", {})
    if state.get("run") is not view:
        state.clear()
        state.update(run=view, walks={})
    if opts.key not in state["walks"]:
        memory = view.memory()
        try:
            w = itp.walk(memory, 0, 1, opts.n, opts.start, opts.end, opts.extrapolate)
            frames = w.rgb if opts.detail == 1 else itp.decode_rgb(memory.model, w.codes, scale=opts.detail)
        except ApmVizError as err:
            st.error(str(err))
            st.stop()
        state["walks"][opts.key] = {"walk": w, "frames": frames, "islands": {}}
    return state["walks"][opts.key]


def metrics(view, w, n: int) -> None:
    memory = view.memory()
    m = st.columns(5)
    m[0].metric("Smoothness (RGB)", f"{w.smoothness('rgb'):.3f}", help=f"even steps: 1/n = {1 / n:.3f}")
    m[1].metric("Smoothness (field)", f"{w.smoothness('field'):.3f}", help=f"even steps: 1/n = {1 / n:.3f}")
    for k, name in enumerate(("A", "B")):
        err = itp.end_errors(memory, k)
        m[2 + k].metric(f"End {name}: RGB error", f"{err['rgb_mse']:.1e}",
                        help=f"MSE against image {name} pooled to the grid; against the other image "
                             f"{err['rgb_mse_other']:.1e}. Field error {err['field_rel']:.3f} of the teacher's "
                             f"variance (other image: {err['field_rel_other']:.3f}).")
    m[4].metric("Fit", f"{view.run.seconds:.1f} s", help=f"{view.iteration} iterations on {len(memory)} images")
    st.caption(f"Smoothness: largest step between consecutive frames over the distance between the ends "
               f"(n even steps give 1/n = {1 / n:.3f}; a jump gives 1).")


def gif(entry: dict) -> bytes:
    """The walk as a GIF, there and back, made once."""
    if "gif" not in entry:
        entry["gif"] = walk_gif(entry["frames"], size=LARGE)
    return entry["gif"]


def walk_islands(entry: dict, method: str, seed: int) -> tuple:
    """(projection of every field of the walk together, island count per frame), computed once per method."""
    name = "pca" if method == "PCA" else "tsne"
    if name not in entry["islands"]:
        w = entry["walk"]
        with st.spinner("Projecting every field of the walk…"):
            entry["islands"][name] = (itp.walk_islands(w.fields, name, seed=seed), itp.walk_island_counts(w.fields))
    return entry["islands"][name]


def strip(pictures: list[np.ndarray], captions: list[str], width: int = 72) -> None:
    st.image([upscale(f, THUMB) for f in pictures], caption=captions, width=width)


def dreams(view, opts: WalkOptions, seed: int) -> None:
    """Random trigger columns unfolded, drawn once per count, spread and detail."""
    state = st.session_state["interp_walks"]
    key = (opts.dreams, opts.temperature, opts.detail)
    if state.get("dream_key") != key:
        state["dream_key"] = key
        state["dreams"] = itp.dream(view.memory(), opts.dreams, seed=seed, temperature=opts.temperature,
                                    scale=opts.detail)
    strip(state["dreams"], [f"dream {i + 1}" for i in range(opts.dreams)], width=96)


def export(view, entry: dict, method: str, proj, counts) -> None:
    """The walk strip and the walk animation for slides, made when a button is clicked."""
    w, frames, names = entry["walk"], entry["frames"], tuple(view.memory().names[:2])
    style, fmt, dpi = slide_options("interp_export")
    with_islands = st.checkbox("With the islands row", True, key="interp_export_islands",
                               help=f"The {method} islands under the frames, and beside them in the animation")
    isl, cnt = (proj.colors, counts) if with_islands else (None, None)
    stem = f"{safe_stem(names[0])}-to-{safe_stem(names[1])}-walk"
    dl = st.columns(3)
    figure_button("Walk strip", lambda s: interpolation_figure(frames, w.steps, w.n, s, isl, cnt, names), fmt, style,
                  dpi, f"{stem}.{fmt}", "interp_dl_strip", dl[0])
    animation_buttons("Walk", lambda f: walk_animation_bytes(frames, w.steps, w.n, f, style, isl, names), stem,
                      "interp_dl_walk", dl[1:])
    st.caption("Every frame stamped with its i/n; the animation plays there and back. Files are made when you click.")
