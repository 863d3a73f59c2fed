"""The Boring video page's pieces: MViTv2 and its weights, the controls, the
three sets of islands (MViTv2, the Islands page's APM, the sidebar's teacher),
and the rows that draw them (maps, slide export, scatters, across frames)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import streamlit as st

from apm_viz.errors import ApmVizError
from apm_viz.figures.maps import Panel, image_figure, island_map_figure, upscale
from apm_viz.figures.projections import camera_from_angles, scatter_figure
from apm_viz.figures.video import boring_video_figure
from apm_viz.islands import (DEFAULT_MIN_SIZE, DEFAULT_TAU, Projection, ProjectionConfig, count_islands, islands_text,
                             project)
from apm_viz.names import safe_stem
from apm_viz.video import (BLOCK_GRIDS, DEFAULT_BLOCK, FRAMES, LOW_BLOCKS, PROJECT_SIDE, BoringVideo,
                           BoringVideoOutput, create_boring_video, pool_field)

from .downloads import figure_button, slide_options
from .sidebar import Choice, teacher_output
from .state import islands_film
from .weights import PENDING, weights_choice

CAMERA = camera_from_angles(45, 25)
NO_BAR = {"displayModeBar": False}


@st.cache_resource(max_entries=2, show_spinner="Building MViTv2-S (34.5 M parameters)…")
def get_video_model(weights: Optional[str], seed: int) -> BoringVideo:
    return create_boring_video(weights, allow_download=True, seed=seed)


@st.cache_data(max_entries=4, show_spinner=False)
def get_tokens(image_sha: str, model_key: tuple, _image, _model: BoringVideo) -> BoringVideoOutput:
    """Every block's tokens for one image and one set of weights (one forward pass)."""
    return _model.encode(_image)


@st.cache_data(max_entries=48, show_spinner=False)
def get_projection(key: tuple, config: ProjectionConfig, _fields: list) -> Projection:
    """A projection of fields named by `key` (what they are) and `config`."""
    return project(_fields, config)


def mvit_model(choice: Choice) -> tuple[BoringVideo, tuple]:
    """The weights choice and the MViTv2 it gives; until a named file loads, the
    previous good weights (or the automatic ones) stay in use. Returns the
    model and its cache key (weights, seed)."""
    ss = st.session_state
    wcols = st.columns([2, 3])
    weights = weights_choice("MViTv2 weights", "Automatic (torch hub cache, download, else random)", "video_",
                             "Put torchvision's mvit_v2_s-ae3be167.pth (or a state dict of the same model) in "
                             "this folder.", wcols[0], wcols[1])
    if weights is not PENDING:
        try:
            get_video_model(weights, choice.seed)
            ss["good_video_key"] = (weights, choice.seed)
        except ApmVizError as err:
            wcols[1].error(f"{err} — keeping the previous MViTv2 weights.")
    model_key = ss.get("good_video_key") or (None, choice.seed)
    video = get_video_model(*model_key)
    if video.weights.warning:
        st.warning(video.weights.warning, icon="⚠️")
    else:
        wcols[1].success(f"MViTv2 weights — {video.weights.label}", icon="✅")
    if video.weights.kind == "random":
        wcols[1].caption(f"MViTv2 weights — {video.weights.label}")
    return video, model_key


def tokens_of(choice: Choice, video: BoringVideo, model_key: tuple) -> tuple[BoringVideoOutput, bool]:
    """Every block's tokens of the image, and whether they came from the cache."""
    ss = st.session_state
    cached = (choice.image.sha256, model_key) == ss.get("video_tokens_key")
    with st.spinner("MViTv2-S looks at 16 copies of the image: one forward pass for every block "
                    "(about 2 s on 2 free CPU cores, longer when they are busy)…"):
        tokens = get_tokens(choice.image.sha256, model_key, choice.image, video)
    ss["video_tokens_key"] = (choice.image.sha256, model_key)
    return tokens, cached


@dataclass(frozen=True)
class Controls:
    """What the page's controls chose: the block and token frame, the
    projection (`config`, its name `method`), τ, the smallest island, and
    whether a large block is projected at full size."""

    block: int
    frame: int
    method: str
    tau: float
    min_size: int
    full: bool
    config: ProjectionConfig

    @property
    def side(self) -> int:
        h, w, _ = BLOCK_GRIDS[self.block]
        return max(h, w) if self.full else PROJECT_SIDE

    def projected(self, field: np.ndarray) -> np.ndarray:
        """A block's (h, w, D) tokens as projected: pooled to PROJECT_SIDE unless full."""
        return field if self.full else pool_field(field, PROJECT_SIDE)


def _block_label(b: int) -> str:
    h, w, d = BLOCK_GRIDS[b]
    low = " · authors' layer" if b in LOW_BLOCKS else ""
    return f"block {b} · {h}x{w}x{d}{low}"


def controls(choice: Choice) -> Controls:
    """The row of controls (block, token frame, projection, τ, smallest island; full size for large blocks)."""
    opts = st.columns([3, 2, 2, 2, 1])
    block = opts[0].selectbox("Block", range(len(BLOCK_GRIDS)), index=DEFAULT_BLOCK, format_func=_block_label,
                              key="video_block")
    frame = int(opts[1].slider("Token frame", 0, FRAMES - 1, 0, key="video_frame",
                               help="The authors used frame 0. Token frame t covers input frames 2t-1 to 2t+1."))
    method = opts[2].radio("Projection", ("t-SNE 3-D", "PCA 3-D"), horizontal=True, key="video_projection")
    tau = opts[3].slider("Agreement τ", -1.0, 1.0, DEFAULT_TAU, 0.01, key="video_tau",
                         help="One threshold for all three: neighbours with centred cosine similarity ≥ τ share "
                              "an island")
    min_size = int(opts[4].number_input("Smallest island", 1, 64, DEFAULT_MIN_SIZE, key="video_min_size"))
    h, w, _ = BLOCK_GRIDS[block]
    full = False
    if max(h, w) > PROJECT_SIDE:
        full = st.checkbox(f"Project block {block} at its full {h}x{w} (t-SNE about 4x slower than pooled "
                           f"to {PROJECT_SIDE}x{PROJECT_SIDE})", key="video_full")
    config = ProjectionConfig(method="pca", dims=3) if method.startswith("PCA") else \
        ProjectionConfig(dims=3, seed=choice.seed)
    return Controls(block, frame, method, tau, min_size, full, config)


@dataclass
class Islands:
    """One model's islands: 3-D coordinates (N, 3), colours (h, w, 3), count;
    for the APM also its iteration and the run's length."""

    coords: np.ndarray
    colors: np.ndarray
    count: int
    iteration: Optional[int] = None
    iters: Optional[int] = None


def mvit_islands(choice: Choice, model_key: tuple, tokens: BoringVideoOutput, c: Controls) -> Islands:
    """MViTv2's islands: the chosen block's tokens at the chosen token frame."""
    field = tokens.field(c.block, c.frame)
    with st.spinner(f"{c.method} of MViTv2's {c.side}x{c.side} tokens…"):
        mv = get_projection(("mvit", choice.image.sha256, model_key, c.block, c.frame, c.full), c.config,
                            [c.projected(field)])
    return Islands(mv.coords[0], mv.colors[0], count_islands(field, c.tau, c.min_size))


def apm_islands(choice: Choice, c: Controls):
    """The last frame of this session's Islands run for this choice (None
    without one), and the film (None without one)."""
    film = islands_film(choice, int(st.session_state.get("iters", 250)))
    if film is None or film.frames == 0:
        return None, film
    k = film.frames - 1
    snap = film.run.snapshots[k]
    ap = film.live_projection("3d") if c.config.method == "tsne" else film.projection(c.config)
    return Islands(ap.coords[k], ap.colors[k], count_islands(snap.field, c.tau, c.min_size), snap.iteration,
                   film.run.config.iters), film


def teacher_islands(choice: Choice, c: Controls, film) -> Islands:
    """The sidebar teacher's islands on its patch grid (the film's projection when there is a run)."""
    teacher = teacher_output(choice)
    with st.spinner(f"{c.method} of the teacher's patch grid…"):
        if film is not None:
            dp = film.teacher_projection(c.config)
        else:
            dp = get_projection(("teacher", choice.image.sha256, choice.teacher_key, choice.grid), c.config,
                                [teacher.grid])
    return Islands(dp.coords[0], dp.colors[0], count_islands(teacher.grid, c.tau, c.min_size))


def maps_row(choice: Choice, tokens: BoringVideoOutput, c: Controls, mv: Islands, apm: Optional[Islands],
             teacher: Islands) -> None:
    """The input, then MViTv2's, the APM's and the teacher's island maps."""
    maps = st.columns(4)
    with maps[0]:
        st.plotly_chart(image_figure(tokens.image, "input (each of 16 frames)"), width="stretch",
                        key="video_input", config=NO_BAR)
    with maps[1]:
        st.plotly_chart(island_map_figure(mv.colors, f"MViTv2 block {c.block}, frame {c.frame} · "
                                                     f"{islands_text(mv.count)}"),
                        width="stretch", key="video_mvit_map", config=NO_BAR)
    with maps[2]:
        if apm is None:
            st.info("No APM run for this image and these settings yet: run it on the Islands page, then come back.")
            st.page_link("views/1_islands.py", label="Go to the Islands page", icon="🏝️")
        else:
            st.plotly_chart(island_map_figure(apm.colors, f"APM, iteration {apm.iteration} · "
                                                          f"{islands_text(apm.count)}"),
                            width="stretch", key="video_apm_map", config=NO_BAR)
            if apm.iteration < apm.iters:
                st.caption(f"The run has reached iteration {apm.iteration} of {apm.iters}; it continues on the "
                           "Islands page.")
    with maps[3]:
        st.plotly_chart(island_map_figure(teacher.colors, f"teacher {choice.teacher.name} · "
                                                          f"{islands_text(teacher.count)}"),
                        width="stretch", key="video_teacher_map", config=NO_BAR)


def export_expander(choice: Choice, tokens: BoringVideoOutput, c: Controls, mv: Islands, apm: Optional[Islands],
                    teacher: Islands) -> None:
    """The slide of the maps row, made when its button is clicked."""
    with st.expander("Export for slides"):
        style, fmt, dpi = slide_options("video_export")
        panels = dict(mvit=Panel(mv.colors, f"MViTv2 block {c.block} · frame {c.frame}", mv.count),
                      teacher=Panel(teacher.colors, f"teacher {choice.teacher.name}", teacher.count),
                      apm=None if apm is None else Panel(apm.colors, f"APM · iteration {apm.iteration}", apm.count))
        figure_button("Boring video comparison",
                      lambda s: boring_video_figure(tokens.image, style=s,
                                                    title=f"{c.method} islands at τ = {c.tau:.2f}", **panels),
                      fmt, style, dpi,
                      f"{safe_stem(choice.image.name)}-boring-video-block{c.block}-frame{c.frame}.{fmt}",
                      "video_dl_figure")
        st.caption("Input, MViTv2, APM and teacher islands with their counts, as above"
                   + ("" if apm is not None else " (no APM run yet: the file leaves it out)")
                   + ". The file is made when you click.")


def scatters_row(c: Controls, mv: Islands, apm: Optional[Islands], teacher: Islands) -> None:
    """Three 3-D scatters at most: browsers give a page 8 to 16 WebGL contexts."""
    h, w, _ = BLOCK_GRIDS[c.block]
    scatters = st.columns(4)
    with scatters[0]:
        st.caption(f"{c.method} of the {c.side}x{c.side} " +
                   ("tokens" if c.side == h else f"tokens (pooled from {h}x{w})"))
    with scatters[1]:
        st.plotly_chart(scatter_figure(mv.coords, mv.colors, f"MViTv2 · {c.method}", camera=CAMERA),
                        width="stretch", key="video_mvit_scatter")
    with scatters[2]:
        if apm is not None:
            st.plotly_chart(scatter_figure(apm.coords, apm.colors, f"APM · {c.method}", camera=CAMERA),
                            width="stretch", key="video_apm_scatter")
    with scatters[3]:
        st.plotly_chart(scatter_figure(teacher.coords, teacher.colors, f"teacher · {c.method}", camera=CAMERA),
                        width="stretch", key="video_teacher_scatter")


def across_frames(choice: Choice, model_key: tuple, tokens: BoringVideoOutput, c: Controls) -> None:
    """Does the boring video settle? Each frame against the chosen one and the one before."""
    block, frame = c.block, c.frame
    h, w, d = BLOCK_GRIDS[block]
    vs_chosen = tokens.frame_differences(block, reference=frame)
    vs_previous = tokens.consecutive_differences(block)
    centre = FRAMES // 2
    st.markdown(f"Block {block}: the centre frames {centre - 1} and {centre} differ by "
                f"**{vs_previous[centre]:.3f}**, frames 0 and 1 by **{vs_previous[1]:.3f}**, frames {FRAMES - 2} "
                f"and {FRAMES - 1} by **{vs_previous[-1]:.3f}** (relative, ‖Xₜ − Xₜ₋₁‖ / ‖Xₜ₋₁‖). Every input "
                "frame is the same: what differs comes from zero padding in time, which reaches further in from "
                "the ends in deeper blocks.")
    if not st.checkbox(f"Show block {block} in all {FRAMES} frames", key="video_all_frames"):
        return
    fields = [c.projected(tokens.field(block, t)) for t in range(FRAMES)]
    note = "aligned t-SNE: each frame starts from the one before" if c.config.method == "tsne" else "joint PCA"
    with st.spinner(f"Projecting {FRAMES} frames ({note})…"):
        allp = get_projection(("mvit-all", choice.image.sha256, model_key, block, c.full), c.config, fields)
    counts = [count_islands(tokens.field(block, t), c.tau, c.min_size) for t in range(FRAMES)]
    for t, col in enumerate(st.columns(FRAMES)):
        col.image(upscale(allp.colors[t], 160), width="stretch",
                  caption=f"frame {t} · {islands_text(counts[t])} · Δ{frame} {vs_chosen[t]:.3f}")
    st.dataframe({"token frame": list(range(FRAMES)), f"vs frame {frame}": np.round(vs_chosen, 4),
                  "vs previous frame": np.round(vs_previous, 4), "islands": counts}, hide_index=True)
    st.caption(f"One colour space for all frames ({note}). Δ is the relative Frobenius distance of a frame's "
               f"{h}x{w}x{d} tokens to frame {frame}'s.")
