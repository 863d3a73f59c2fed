"""Latent interpolation: one APM learns several images at once; the trigger
columns of two of them are mixed, v_i = v1 + (v2 - v1) i / n, and every v_i is
unfolded through the same MLP into a frame."""

from typing import Optional

import streamlit as st

from apm_viz import interpolate as itp
from apm_viz.errors import ApmVizError
from apm_viz.figures.interpolation import interpolation_figure, walk_animation_bytes, walk_gif
from apm_viz.figures.maps import upscale
from apm_viz.names import safe_stem
from apm_viz.images import LoadedImage, load_image
from apm_viz.jobs import MemoryJob
from ui.cache import get_teacher_output
from ui.downloads import animation_buttons, figure_button, slide_options
from ui import runs
from ui.sidebar import SAMPLES, _load_sample
from ui.state import require_choice
from ui.uploads import image_uploader

UPLOAD = "Upload…"
#: Pixels per picture in the strips and the player; nearest-neighbour, so grid cells stay sharp.
THUMB, LARGE = 96, 320

st.title("Latent interpolation")
choice = require_choice()
ss = st.session_state

with st.expander("What you are looking at", expanded=False):
    st.markdown(
        "The trigger column **T** is the key that retrieves an image from the APM's memory. One APM is fitted "
        "on a few images at once (grid + rgb losses, so it learns each image's field and colours). For two "
        "of them, **v_i = v1 + (v2 − v1) · i / n** is unfolded through the same MLP at every grid location; "
        "the RGB field of v_i is one frame. i = 0 and i = n are the fitted images; i < 0 and i > n extrapolate "
        "past them. A *dream* unfolds a random trigger column drawn with the fitted columns' mean and spread, "
        "location by location. **Smoothness** is the largest step between consecutive frames over the "
        "distance between the ends: n even steps give 1/n, a jump from one image to the other gives 1.")


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


# -- what to learn -----------------------------------------------------------------
cols = st.columns([2, 2, 3])
with cols[0]:
    image_a = pick("Image A", "chelsea.jpg", "interp_a")
with cols[1]:
    image_b = pick("Image B", "coffee.jpg", "interp_b")
with cols[2]:
    extra_names = st.multiselect("Also learn (optional)", SAMPLES, key="interp_more",
                                 help="More images in the same memory; the walk still goes from A to B.")
    extra_uploads = image_uploader("More uploads (optional)", key="interp_more_up", multiple=True)
images: list[LoadedImage] = [im for im in (image_a, image_b) if im is not None]
for name in extra_names:
    images.append(_load_sample(name))
for up in extra_uploads or []:
    try:
        images.append(load_image(up.getvalue(), name=up.name))
    except ApmVizError as err:
        st.error(str(err))
unique: dict[str, LoadedImage] = {}
for im in images:
    unique.setdefault(im.sha256, im)
images = list(unique.values())

fit_cols = st.columns([2, 1, 1, 3])
iters = int(fit_cols[0].number_input("Fit iterations", 10, 5000, itp.DEFAULT_ITERS, step=50, key="interp_iters"))
ready = image_a is not None and image_b is not None and image_a.sha256 != image_b.sha256
if image_a is not None and image_b is not None and not ready:
    st.warning("Choose two different images for A and B.")
fit_key = (tuple(im.sha256 for im in images), choice.teacher_key, choice.grid, choice.preset, choice.seed, iters)
run = runs.current("interp", fit_key)


def memory_job():
    outs = [get_teacher_output(im.sha256, choice.teacher_key, choice.grid, im, choice.teacher) for im in images]
    config = itp.memory_config(preset=choice.preset, iters=iters, seed=choice.seed)
    return MemoryJob(fit_key, outs, config, [im.name for im in images])


if fit_cols[1].button("Fit", type="primary", width="stretch", disabled=not ready or runs.is_live(run),
                      key="interp_fit_button"):
    run = runs.start("interp", fit_key, memory_job)
if fit_cols[2].button("Cancel", width="stretch", disabled=not runs.is_live(run), key="interp_cancel"):
    run.cancel()
    run.manager.wait(run, 5.0)
fit_cols[3].caption(f"{len(images)} images · grid {choice.grid}x{choice.grid} · preset {choice.preset} · "
                    f"teacher {choice.teacher.name} ({choice.teacher.weights.kind})")

# -- the walk's settings ---------------------------------------------------------------
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


drawn = None if run is None else (run.id, run.status)


@st.fragment(run_every=runs.POLL_SECONDS if runs.is_live(run) else None)
def fit_view():
    if run is None:
        st.caption("Press **Fit** to teach one APM all the images above.")
        return
    fit = run.view
    loss = f"{fit.run.losses[-1][1]:.3e}" if fit.run.losses else "—"
    st.progress(fit.fraction, text=f"iteration {fit.iteration}/{fit.run.config.iters} · loss {loss} · "
                f"{fit.run.seconds:.1f} s")
    said = runs.status_line(run)
    if said:
        st.caption(said)
    if fit.run.status == "diverged":
        st.error(fit.run.message)
    elif fit.run.status == "cancelled":
        st.info(f"{fit.run.message}: the walk below uses what the APM learned in {fit.iteration} iterations.")
    if (run.id, run.status) != drawn:
        st.rerun(scope="app")


fit_view()

if run is None or run.live or run.view.weights is None:
    st.stop()

# -- the walk -------------------------------------------------------------------------
state = ss.setdefault("interp_walks", {})
if state.get("run") is not run.view:
    state.clear()
    state.update(run=run.view, walks={})
memory = run.view.memory()
walk_key = (n, start, end, extrapolate, detail)
try:
    if walk_key not in state["walks"]:
        w = itp.walk(memory, 0, 1, n, start, end, extrapolate)
        frames = w.rgb if detail == 1 else itp.decode_rgb(memory.model, w.codes, scale=detail)
        state["walks"][walk_key] = {"walk": w, "frames": frames, "islands": {}}
    entry = state["walks"][walk_key]
except ApmVizError as err:
    st.error(str(err))
    st.stop()
w, frames = entry["walk"], entry["frames"]
labels = w.labels()

errors = [itp.end_errors(memory, k) for k in (0, 1)]
m = st.columns(5)
m[0].metric("Smoothness (RGB)", f"{w.smoothness('rgb'):.3f}", help=f"even steps: 1/n = {1 / n:.3f}")
m[1].metric("Smoothness (field)", f"{w.smoothness('field'):.3f}", help=f"even steps: 1/n = {1 / n:.3f}")
for k, (name, err) in enumerate(zip(("A", "B"), errors)):
    m[2 + k].metric(f"End {name}: RGB error", f"{err['rgb_mse']:.1e}",
                    help=f"MSE against image {name} pooled to the grid; against the other image "
                         f"{err['rgb_mse_other']:.1e}. Field error {err['field_rel']:.3f} of the teacher's "
                         f"variance (other image: {err['field_rel_other']:.3f}).")
m[4].metric("Fit", f"{run.view.run.seconds:.1f} s", help=f"{run.view.iteration} iterations on {len(memory)} images")
st.caption(f"Smoothness: largest step between consecutive frames over the distance between the ends "
           f"(n even steps give 1/n = {1 / n:.3f}; a jump gives 1).")

st.subheader("The walk")
refs = st.columns([1, 8, 1])
refs[0].image(upscale(memory.target_rgb[0], THUMB), caption=f"A: {memory.names[0]}", width="stretch")
refs[2].image(upscale(memory.target_rgb[1], THUMB), caption=f"B: {memory.names[1]}", width="stretch")
with refs[1]:
    st.image([upscale(f, THUMB) for f in frames], caption=labels, width=72)

player = st.columns(3)
with player[0]:
    k = st.slider("Position along the walk", 0, len(w) - 1, 0, key="interp_pos")
    st.image(upscale(frames[k], LARGE), caption=labels[k], width="stretch")
if "gif" not in entry:
    entry["gif"] = walk_gif(frames, size=LARGE)
gif = entry["gif"]
with player[1]:
    st.image(gif, caption="the walk, there and back (GIF)", width="stretch")

# -- islands in one colour space --------------------------------------------------------
with player[2]:
    proj_name = "pca" if method == "PCA" else "tsne"
    if proj_name not in entry["islands"]:
        with st.spinner("Projecting every field of the walk…"):
            entry["islands"][proj_name] = (itp.walk_islands(w.fields, proj_name, seed=choice.seed),
                                           itp.walk_island_counts(w.fields))
    proj, counts = entry["islands"][proj_name]
    st.image(upscale(proj.colors[k], LARGE), caption=f"islands at {labels[k]} · {counts[k]} islands",
             width="stretch")
st.subheader("Islands along the walk")
st.caption("Every field projected together, so a colour means the same thing in every frame.")
st.image([upscale(c, THUMB) for c in proj.colors], caption=[f"{lab} · {c}" for lab, c in zip(labels, counts)],
         width=72)

if dreams:
    st.subheader("Dreams")
    dream_key = (dreams, temperature, detail)
    if state.get("dream_key") != dream_key:
        codes = itp.dream_codes(memory.columns, dreams, seed=choice.seed, temperature=temperature)
        _, rgb = itp.decode(memory.model, codes)
        state["dream_key"] = dream_key
        state["dreams"] = rgb if detail == 1 else itp.decode_rgb(memory.model, codes, scale=detail)
    st.image([upscale(f, THUMB) for f in state["dreams"]], caption=[f"dream {i + 1}" for i in range(dreams)],
             width=96)

with st.expander("Export for slides"):
    style, fmt, dpi = slide_options("interp_export")
    with_islands = st.checkbox("With the islands row", True, key="interp_export_islands",
                               help=f"The {method} islands under the frames, and beside them in the animation")
    isl, cnt = (proj.colors, counts) if with_islands else (None, None)
    names = (memory.names[0], memory.names[1])
    stem = f"{safe_stem(names[0])}-to-{safe_stem(names[1])}-walk"
    dl = st.columns(3)
    figure_button("Walk strip", lambda s: interpolation_figure(frames, w.steps, w.n, s, isl, cnt, names), fmt, style,
                  dpi, f"{stem}.{fmt}", "interp_dl_strip", dl[0])
    animation_buttons("Walk", lambda f: walk_animation_bytes(frames, w.steps, w.n, f, style, isl, names), stem,
                      "interp_dl_walk", dl[1:])
    st.caption("Every frame stamped with its i/n; the animation plays there and back. Files are made when you click.")
