"""The Islands page's pieces: its controls, the progress line that polls a run,
and the frames (island maps, scatters, curves) drawn from a film's view.

Draw only what changed: the progress line is the only part that ticks while a
run trains; it reruns the page when the run has a new frame or a new state.
Figures are built once per frame and setting and kept (`figure`), so a
scrub, Play or τ rebuilds nothing that was built before, and Streamlit sends
an unchanged figure as a reference to the copy the browser already has.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import streamlit as st

from apm_viz import islands
from apm_viz.figures import curves, maps, projections
from apm_viz.film import FilmFrames
from apm_viz.islands import DEFAULT_MIN_SIZE, DEFAULT_TAU, ProjectionConfig, islands_text
from apm_viz.worker import Handle

from . import runs
from .islands_panels import ALIGNMENT_CAPTION, alignment_curve, alignment_text, authors_panel

#: Figures a session keeps (each a built plotly figure).
FIGURES_KEPT = 48
PLAY_SPEEDS = {"slow": 1.0, "normal": 0.5, "fast": 0.25}  # seconds per frame
NO_BAR = {"displayModeBar": False}


@dataclass(frozen=True)
class Options:
    method: str
    tau: float
    min_size: int
    alpha: float
    azimuth: int
    elevation: int
    speed: str


def options() -> Options:
    opts = st.columns(6)
    method = opts[0].radio("Projection", ("aligned t-SNE", "PCA"), horizontal=True, key="projection")
    tau = opts[1].slider("Agreement τ", -1.0, 1.0, DEFAULT_TAU, 0.01, key="tau",
                         help="Neighbours with centred cosine similarity ≥ τ belong to one island")
    min_size = int(opts[2].number_input("Smallest island", 1, 64, DEFAULT_MIN_SIZE, key="min_size"))
    alpha = opts[3].slider("Overlay on image", 0.0, 1.0, 0.0, 0.05, key="alpha")
    with opts[4]:
        azimuth = st.slider("3-D azimuth", -180, 180, 45, 5, key="azimuth")
        elevation = st.slider("3-D elevation", -90, 90, 25, 5, key="elevation")
    speed = opts[5].radio("Play speed", list(PLAY_SPEEDS), index=1, horizontal=True, key="play_speed")
    return Options(method, tau, min_size, alpha, azimuth, elevation, speed)


def warm_up(grid: np.ndarray) -> None:
    """What a first frame reads and draws, once per server, off screen: the projections and island
    count of a grid (h, w, D) and one figure of each kind (scikit-learn and plotly load on first use)."""
    pca = islands.project([grid], ProjectionConfig(method="pca", dims=3))
    islands.count_islands(grid, DEFAULT_TAU, DEFAULT_MIN_SIZE)
    maps.island_map_figure(pca.colors[0], "warm-up")
    projections.scatter_figure(pca.coords[0], pca.colors[0], "warm-up", camera=projections.camera_from_angles(45, 25))
    projections.scatter_figure(pca.coords[0][:, :2], pca.colors[0], "warm-up", selected=[0])
    curves.curve_figure({"a": [(0, 1.0), (1, 0.5)]}, "warm-up", "y", current=0, log_y=True)


def figure(view: FilmFrames, key: tuple, build: Callable):
    """The figure `key` of this view, built once (per session, the newest FIGURES_KEPT)."""
    store = st.session_state.setdefault("figures", {"view": None, "items": OrderedDict()})
    if store["view"] is not view:
        store["view"], store["items"] = view, OrderedDict()
    items = store["items"]
    if key not in items:
        items[key] = build()
        while len(items) > FIGURES_KEPT:
            items.popitem(last=False)
    items.move_to_end(key)
    return items[key]


def drawn_state(h: Optional[Handle]) -> tuple:
    """What the page's figures depend on in a run: new frames or a new state redraw them."""
    if h is None:
        return ()
    v = h.view
    return h.id, h.status, v.preview_frames, v.frames, bool(v.teacher_projections)


def progress_line(h: Optional[Handle]) -> None:
    """The run's progress; while it is live it polls, and reruns the page when a frame or the state is new."""
    if h is not None:
        runs.progress(h, _line, drawn_state, key="islands-progress")


def _line(h: Handle) -> None:
    prog = h.view.progress()
    loss = "—" if prog.loss is None else f"{prog.loss:.3e}"
    eta = "" if prog.eta is None or not h.live else f" · about {prog.eta:.0f} s left"
    st.progress(min(prog.fraction, 1.0), text=f"iteration {prog.iteration}/{prog.iters} · loss {loss} · "
                f"{prog.frames}/{prog.snapshots} frames{eta}")
    said = runs.status_line(h)
    if said:
        (st.error if h.status == "failed" else st.caption)(said)


def _selection(h: int, w: int) -> tuple[list[int], Optional[np.ndarray]]:
    """Locations picked in the 2-D scatter of this grid (a selection made on another grid is ignored)."""
    sel = st.session_state.get(f"scatter2d_{h}x{w}")
    picked = []
    if sel is not None and sel.get("selection"):
        picked = sorted({int(p["point_index"]) for p in sel["selection"].get("points", [])
                         if 0 <= int(p["point_index"]) < h * w})
    if not picked:
        return [], None
    mask = np.zeros(h * w, bool)
    mask[picked] = True
    return picked, mask.reshape(h, w)


def shown_frame(h: Handle, labels: list[int]) -> int:
    """The index of the frame to draw: Play's, the slider's, or the newest while training."""
    ss = st.session_state
    if ss.get("playing"):
        k = ss.get("play_k", 0)
        if k >= len(labels):
            k = 0 if not h.live else len(labels) - 1
        ss["frame_iter"] = labels[k]
        return k
    if h.live and h.status == "running":
        st.caption("Showing the newest frame; Pause to scrub, or Play to step through the frames so far.")
        return len(labels) - 1
    if ss.get("frame_iter") not in labels:
        ss["frame_iter"] = labels[-1]
    it = st.select_slider("TTT iteration", options=labels, key="frame_iter")
    return labels.index(it)


def frames(h: Optional[Handle], opts: Options, image) -> None:
    """The film's frames; Play ticks through them without computing anything."""
    ss = st.session_state

    @st.fragment(run_every=PLAY_SPEEDS[opts.speed] if ss.get("playing") else None)
    def draw():
        if h is None:
            with st.container(key="islands-input"):
                st.image(image.image, caption=image.name, width=320)
            st.caption("Press **Run** to start test-time training.")
            return
        view = h.view
        n = view.preview_frames
        if n == 0:
            return
        if ss.get("playing"):  # the next computed frame; at the end, wrap (or wait for the next while training)
            k = ss.get("play_k", -1) + 1
            ss["play_k"] = k if k < n else (0 if not h.live else n - 1)
        labels = [s.iteration for s in view.run.snapshots[:n]]
        k = shown_frame(h, labels)
        _draw_frame(view, k, opts)
        if k < view.frames:  # the authors' frame beside the aligned t-SNE one (authors' recipe only)
            authors_panel(view, k, view.live_projection("3d").colors[k], h.live and h.status == "running")

    draw()


def _projections(view: FilmFrames, k: int, method: str):
    """(3-D, 2-D, name, preview?) for frame k: the live t-SNE, PCA, or the PCA preview until t-SNE lands."""
    if method == "PCA":
        return (view.projection(ProjectionConfig(method="pca", dims=3)),
                view.projection(ProjectionConfig(method="pca", dims=2)), "PCA", False)
    if k < view.frames:
        return view.live_projection("3d"), view.live_projection("2d"), "t-SNE", False
    return view.preview_projection("3d"), view.preview_projection("2d"), "PCA preview", True


def _draw_frame(view: FilmFrames, k: int, opts: Options) -> None:
    method = opts.method if k < view.frames or opts.method != "PCA" else "aligned t-SNE"
    p3, p2, name, preview = _projections(view, k, method)
    n3 = len(p3)
    h, w = view.teacher.grid.shape[:2]
    picked, highlight = _selection(h, w)
    sel = tuple(picked)
    counts = view.island_counts(opts.tau, opts.min_size, frames=view.preview_frames)
    it = counts[k][0]
    cols = st.columns(4)
    img = view.teacher.image
    cols[0].plotly_chart(figure(view, ("input", sel), lambda: maps.image_figure(img, "input", highlight)),
                         width="stretch", config=NO_BAR)
    shares = alignment_text(view, k)
    cols[1].plotly_chart(figure(view, ("map", name, k, n3, counts[k][1], shares, opts.alpha, sel), lambda: maps.island_map_figure(
        p3.colors[k], f"APM islands · {islands_text(counts[k][1])} · {shares}".rstrip(" ·"), img, opts.alpha,
        highlight)), width="stretch", config=NO_BAR, key="islands-map")
    cols[2].plotly_chart(figure(view, ("2d", name, k, n3, sel), lambda: projections.scatter_figure(
        p2.coords[k], p2.colors[k], f"2-D {name}", selected=picked or None)), width="stretch",
        key=f"scatter2d_{h}x{w}", on_select="rerun", selection_mode=("points", "box", "lasso"))
    cols[3].plotly_chart(figure(view, ("3d", name, k, n3, opts.azimuth, opts.elevation), lambda: projections.scatter_figure(
        p3.coords[k], p3.colors[k], f"3-D {name}", camera=projections.camera_from_angles(opts.azimuth, opts.elevation))),
        width="stretch")
    if preview:
        st.caption("PCA preview of this iteration; its aligned t-SNE frame replaces it when it lands.")
    if picked:
        st.caption(f"{len(picked)} locations selected in the 2-D plot are lit on the input and the map.")
    cols = st.columns([1, 2, 2, 2])
    t_name = "t-SNE" if method != "PCA" and view.teacher_projections else "PCA"
    tcfg = ProjectionConfig(dims=3) if t_name == "t-SNE" else ProjectionConfig(method="pca", dims=3)
    t_islands = view.teacher_islands(opts.tau, opts.min_size)
    cols[0].plotly_chart(figure(view, ("teacher", t_name, t_islands), lambda: maps.island_map_figure(
        _teacher_colors(view, tcfg), f"teacher islands · {t_islands}")), width="stretch", config=NO_BAR)
    cols[1].plotly_chart(figure(view, ("loss", len(view.run.losses), it), lambda: curves.loss_curve(view.run, it)),
                         width="stretch")
    cols[2].plotly_chart(figure(view, ("count", opts.tau, opts.min_size, len(counts), it), lambda: curves.islands_curve(
        counts, t_islands, opts.tau, current=it)), width="stretch")
    rows = view.alignment()
    with cols[3]:
        st.plotly_chart(figure(view, ("alignment", len(rows), it), lambda: alignment_curve(rows, it)), width="stretch")
        st.caption(ALIGNMENT_CAPTION)


def _teacher_colors(view: FilmFrames, config: ProjectionConfig) -> np.ndarray:
    if config.method == "tsne":
        proj = next((p for c, p in view.teacher_projections.items() if c.dims == 3), None)
        if proj is not None:
            return proj.colors[0]
    return view.teacher_projection(config).colors[0]
