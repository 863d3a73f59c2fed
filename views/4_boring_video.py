"""Boring video: a static image repeated as 16 frames into MViTv2-S; a low block's
tokens for one frame give islands without any training. Beside them, APM's
islands (from the Islands page's run) and the sidebar teacher's."""

from typing import Optional

import numpy as np
import streamlit as st

from apm_viz.errors import ApmVizError
from apm_viz.figures.maps import Panel, image_figure, island_map_figure, upscale
from apm_viz.figures.projections import camera_from_angles, scatter_figure
from apm_viz.figures.video import boring_video_figure
from apm_viz.names import safe_stem
from apm_viz.islands import (DEFAULT_MIN_SIZE, DEFAULT_TAU, Projection, ProjectionConfig, count_islands, islands_text,
                             project)
from apm_viz.weights import list_weights, resolve_weights_path, weights_folder
from apm_viz.video import (BLOCK_GRIDS, DEFAULT_BLOCK, FRAMES, LOW_BLOCKS, BoringVideo, BoringVideoOutput,
                           create_boring_video, pool_field)
from ui.downloads import figure_button, slide_options
from ui.sidebar import teacher_output
from ui.state import islands_film, require_choice

WEIGHT_MODES = ("Automatic (torch hub cache, download, else random)", "Local file", "Random init")
#: Side above which a field is average-pooled before t-SNE (block 0 is 56x56).
PROJECT_SIDE = 28


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


st.title("Boring video")
choice = require_choice()
ss = st.session_state

with st.expander("What you are looking at", expanded=False):
    st.markdown(
        "The APM authors' earlier work found islands of agreement without any training: repeat one image "
        "into a **boring video** (nothing moves), feed a video transformer (MViTv2) and project a low "
        "layer's tokens for one frame with t-SNE; colours follow the 3-D embedding. Here torchvision's "
        "MViTv2-S (Kinetics-400) sees the image 16 times at 224x224; its stem halves time, so every block "
        "holds 8 token frames. The authors took *the second or third layer* (blocks 1-2 here, 28x28). "
        "Zero padding in time makes the first and last token frames differ from the middle ones even "
        "though every input frame is the same: the frame table below shows by how much.")

# -- MViTv2 and its weights -------------------------------------------------------------
wcols = st.columns([2, 3])
mode = wcols[0].radio("MViTv2 weights", WEIGHT_MODES, key="video_weights_mode")
requested: Optional[tuple] = (None, choice.seed)  # (weights, seed) asked for in this run
if mode == "Local file":
    folder = weights_folder()
    files = list_weights()
    with wcols[1]:
        if files:
            typed = st.selectbox(f"File in {folder}", files, key="video_weights_file")
        else:
            typed = st.text_input(f"File name in {folder}", key="video_weights_typed",
                                  help="Put torchvision's mvit_v2_s-ae3be167.pth (or a state dict of the "
                                       "same model) in this folder.")
    requested = None
    try:
        requested = (str(resolve_weights_path(typed)), choice.seed) if typed else None
    except ApmVizError as err:
        wcols[1].error(str(err))
elif mode == "Random init":
    requested = ("random", choice.seed)
if requested is not None:
    try:
        get_video_model(*requested)
        ss["good_video_key"] = requested
    except ApmVizError as err:
        wcols[1].error(f"{err} — keeping the previous MViTv2 weights.")
# Until a named file loads, the previous good weights (or the automatic ones) stay in use.
model_key = ss.get("good_video_key") or (None, choice.seed)
video = get_video_model(*model_key)
if video.weights.warning:
    st.warning(video.weights.warning, icon="⚠️")
else:
    wcols[1].success(f"MViTv2 weights — {video.weights.label}", icon="✅")
if video.weights.kind == "random":
    wcols[1].caption(f"MViTv2 weights — {video.weights.label}")

cached = (choice.image.sha256, model_key) == ss.get("video_tokens_key")
with st.spinner("MViTv2-S looks at 16 copies of the image: one forward pass for every block "
                "(about 2 s on 2 free CPU cores, longer when they are busy)…"):
    tokens = get_tokens(choice.image.sha256, model_key, choice.image, video)
ss["video_tokens_key"] = (choice.image.sha256, model_key)

# -- controls -----------------------------------------------------------------------------
opts = st.columns([3, 2, 2, 2, 1])


def _block_label(b: int) -> str:
    h, w, d = BLOCK_GRIDS[b]
    low = " · authors' layer" if b in LOW_BLOCKS else ""
    return f"block {b} · {h}x{w}x{d}{low}"


block = opts[0].selectbox("Block", range(len(BLOCK_GRIDS)), index=DEFAULT_BLOCK, format_func=_block_label,
                          key="video_block")
frame = int(opts[1].slider("Token frame", 0, FRAMES - 1, 0, key="video_frame",
                           help="The authors used frame 0. Token frame t covers input frames 2t-1 to 2t+1."))
method = opts[2].radio("Projection", ("t-SNE 3-D", "PCA 3-D"), horizontal=True, key="video_projection")
tau = opts[3].slider("Agreement τ", -1.0, 1.0, DEFAULT_TAU, 0.01, key="video_tau",
                     help="One threshold for all three: neighbours with centred cosine similarity ≥ τ share an island")
min_size = int(opts[4].number_input("Smallest island", 1, 64, DEFAULT_MIN_SIZE, key="video_min_size"))
h, w, d = BLOCK_GRIDS[block]
full = False
if max(h, w) > PROJECT_SIDE:
    full = st.checkbox(f"Project block {block} at its full {h}x{w} (t-SNE about 4x slower than pooled "
                       f"to {PROJECT_SIDE}x{PROJECT_SIDE})", key="video_full")
config = ProjectionConfig(method="pca", dims=3) if method.startswith("PCA") else ProjectionConfig(dims=3,
                                                                                                 seed=choice.seed)
camera = camera_from_angles(45, 25)
side = max(h, w) if full else PROJECT_SIDE


def _projected(f: np.ndarray) -> np.ndarray:
    return f if full else pool_field(f, PROJECT_SIDE)


timing = (f"MViTv2 forward: {tokens.seconds:.1f} s when computed" +
          (" · reused from the cache (changing block or frame costs nothing)" if cached else ""))

# -- MViTv2 -------------------------------------------------------------------------------
field = tokens.field(block, frame)
with st.spinner(f"{method} of MViTv2's {side}x{side} tokens…"):
    mv = get_projection(("mvit", choice.image.sha256, model_key, block, frame, full), config,
                        [_projected(field)])
mv_count = count_islands(field, tau, min_size)

# -- APM (from this session's Islands run) ---------------------------------------------------
film = islands_film(choice, int(ss.get("iters", 250)))
apm = None
if film is not None and film.frames > 0:
    k = film.frames - 1
    snap = film.run.snapshots[k]
    ap = film.live_projection("3d") if config.method == "tsne" else film.projection(config)
    apm = (ap.coords[k], ap.colors[k], count_islands(snap.field, tau, min_size), snap.iteration,
           film.run.config.iters)

# -- the teacher ------------------------------------------------------------------------------
teacher = teacher_output(choice)
with st.spinner(f"{method} of the teacher's patch grid…"):
    if film is not None:
        dp = film.teacher_projection(config)
    else:
        dp = get_projection(("teacher", choice.image.sha256, choice.teacher_key, choice.grid), config,
                            [teacher.grid])
teacher_count = count_islands(teacher.grid, tau, min_size)

# -- side by side ---------------------------------------------------------------------------
st.caption(f"Island counts at τ = {tau:.2f} (smallest island {min_size}); grids differ "
           f"(MViTv2 {h}x{w}, APM and the teacher {choice.grid}x{choice.grid}), so compare shapes first. {timing}.")
maps = st.columns(4)
with maps[0]:
    st.plotly_chart(image_figure(tokens.image, "input (each of 16 frames)"), width="stretch", key="video_input",
                    config={"displayModeBar": False})
with maps[1]:
    st.plotly_chart(island_map_figure(mv.colors[0], f"MViTv2 block {block}, frame {frame} · {islands_text(mv_count)}"),
                    width="stretch", key="video_mvit_map", config={"displayModeBar": False})
with maps[2]:
    if apm is None:
        st.info("No APM run for this image and these settings yet: run it on the Islands page, then come back.")
        st.page_link("views/1_islands.py", label="Go to the Islands page", icon="🏝️")
    else:
        st.plotly_chart(island_map_figure(apm[1], f"APM, iteration {apm[3]} · {islands_text(apm[2])}"),
                        width="stretch", key="video_apm_map", config={"displayModeBar": False})
        if apm[3] < apm[4]:
            st.caption(f"The run has reached iteration {apm[3]} of {apm[4]}; it continues on the Islands page.")
with maps[3]:
    st.plotly_chart(island_map_figure(dp.colors[0], f"teacher {choice.teacher.name} · {islands_text(teacher_count)}"),
                    width="stretch", key="video_teacher_map", config={"displayModeBar": False})

with st.expander("Export for slides"):
    style, fmt, dpi = slide_options("video_export")
    panels = dict(mvit=Panel(mv.colors[0], f"MViTv2 block {block} · frame {frame}", mv_count),
                  teacher=Panel(dp.colors[0], f"teacher {choice.teacher.name}", teacher_count),
                  apm=None if apm is None else Panel(apm[1], f"APM · iteration {apm[3]}", apm[2]))
    figure_button("Boring video comparison",
                  lambda s: boring_video_figure(tokens.image, style=s, title=f"{method} islands at τ = {tau:.2f}",
                                                **panels),
                  fmt, style, dpi, f"{safe_stem(choice.image.name)}-boring-video-block{block}-frame{frame}.{fmt}",
                  "video_dl_figure")
    st.caption("Input, MViTv2, APM and teacher islands with their counts, as above"
               + ("" if apm is not None else " (no APM run yet: the file leaves it out)")
               + ". The file is made when you click.")

# Three 3-D scatters at most: browsers give a page 8 to 16 WebGL contexts.
scatters = st.columns(4)
with scatters[0]:
    st.caption(f"{method} of the {side}x{side} " + ("tokens" if side == h else f"tokens (pooled from {h}x{w})"))
with scatters[1]:
    st.plotly_chart(scatter_figure(mv.coords[0], mv.colors[0], f"MViTv2 · {method}", camera=camera),
                    width="stretch", key="video_mvit_scatter")
with scatters[2]:
    if apm is not None:
        st.plotly_chart(scatter_figure(apm[0], apm[1], f"APM · {method}", camera=camera), width="stretch",
                        key="video_apm_scatter")
with scatters[3]:
    st.plotly_chart(scatter_figure(dp.coords[0], dp.colors[0], f"teacher · {method}", camera=camera),
                    width="stretch", key="video_teacher_scatter")

# -- does the boring video settle? -------------------------------------------------------------
st.subheader("Across frames")
vs_chosen = tokens.frame_differences(block, reference=frame)
vs_previous = tokens.consecutive_differences(block)
centre = FRAMES // 2
st.markdown(f"Block {block}: the centre frames {centre - 1} and {centre} differ by **{vs_previous[centre]:.3f}**, "
            f"frames 0 and 1 by **{vs_previous[1]:.3f}**, frames {FRAMES - 2} and {FRAMES - 1} by "
            f"**{vs_previous[-1]:.3f}** (relative, ‖Xₜ − Xₜ₋₁‖ / ‖Xₜ₋₁‖). Every input frame is the same: what "
            "differs comes from zero padding in time, which reaches further in from the ends in deeper blocks.")
if st.checkbox(f"Show block {block} in all {FRAMES} frames", key="video_all_frames"):
    fields = [_projected(tokens.field(block, t)) for t in range(FRAMES)]
    note = "aligned t-SNE: each frame starts from the one before" if config.method == "tsne" else "joint PCA"
    with st.spinner(f"Projecting {FRAMES} frames ({note})…"):
        allp = get_projection(("mvit-all", choice.image.sha256, model_key, block, full), config, fields)
    counts = [count_islands(tokens.field(block, t), tau, min_size) for t in range(FRAMES)]
    cols = st.columns(FRAMES)
    for t, col in enumerate(cols):
        col.image(upscale(allp.colors[t], 160), width="stretch",
                  caption=f"frame {t} · {islands_text(counts[t])} · Δ{frame} {vs_chosen[t]:.3f}")
    st.dataframe({"token frame": list(range(FRAMES)), f"vs frame {frame}": np.round(vs_chosen, 4),
                  "vs previous frame": np.round(vs_previous, 4), "islands": counts}, hide_index=True)
    st.caption(f"One colour space for all frames ({note}). Δ is the relative Frobenius distance of a frame's "
               f"{h}x{w}x{d} tokens to frame {frame}'s.")
