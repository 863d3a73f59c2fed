"""Latent interpolation: one APM learns several images at once; the trigger
columns of two of them are mixed, v_i = v1 + (v2 - v1) i / n, and every v_i is
unfolded through the same MLP into a frame. The fit trains in a worker process."""

import streamlit as st

from apm_viz import interpolate as itp
from apm_viz.figures.maps import upscale
from apm_viz.islands import islands_text
from apm_viz.jobs import MemoryJob
from ui import interp_view as iv
from ui import runs
from ui.cache import get_teacher_output
from ui.state import require_choice

st.title("Latent interpolation")
choice = require_choice()

with st.expander("What you are looking at", expanded=False):
    st.markdown(
        "The trigger column **T** is the key that retrieves an image from the APM's memory. One APM is fitted "
        "on a few images at once (grid + rgb losses, so it learns each image's field and colours). For two "
        "of them, **v_i = v1 + (v2 − v1) · i / n** is unfolded through the same MLP at every grid location; "
        "the RGB field of v_i is one frame. i = 0 and i = n are the fitted images; i < 0 and i > n extrapolate "
        "past them. A *dream* unfolds a random trigger column drawn with the fitted columns' mean and spread, "
        "location by location. **Smoothness** is the largest step between consecutive frames over the "
        "distance between the ends: n even steps give 1/n, a jump from one image to the other gives 1.")

# -- what to learn -----------------------------------------------------------------
image_a, image_b, images = iv.images_to_learn()
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

opts = iv.walk_options()
iv.fit_progress(run)
if run is None or run.live or run.view.weights is None:
    st.stop()

# -- the walk -------------------------------------------------------------------------
fit = run.view
entry = iv.walk(fit, opts)
w, frames = entry["walk"], entry["frames"]
labels = w.labels()
iv.metrics(fit, w, opts.n)

st.subheader("The walk")
memory = fit.memory()
refs = st.columns([1, 8, 1])
refs[0].image(upscale(memory.target_rgb[0], iv.THUMB), caption=f"A: {memory.names[0]}", width="stretch")
refs[2].image(upscale(memory.target_rgb[1], iv.THUMB), caption=f"B: {memory.names[1]}", width="stretch")
with refs[1]:
    iv.strip(frames, labels)

player = st.columns(3)
with player[0]:
    k = st.slider("Position along the walk", 0, len(w) - 1, 0, key="interp_pos")
    st.image(upscale(frames[k], iv.LARGE), caption=labels[k], width="stretch")
player[1].image(iv.gif(entry), caption="the walk, there and back (GIF)", width="stretch")

# -- islands in one colour space --------------------------------------------------------
with player[2]:
    proj, counts = iv.walk_islands(entry, opts.method, choice.seed)
    st.image(upscale(proj.colors[k], iv.LARGE), caption=f"islands at {labels[k]} · {islands_text(counts[k])}",
             width="stretch")
st.subheader("Islands along the walk")
st.caption("Every field projected together, so a colour means the same thing in every frame.")
iv.strip(proj.colors, [f"{lab} · {c}" for lab, c in zip(labels, counts)])

if opts.dreams:
    st.subheader("Dreams")
    iv.dreams(fit, opts, choice.seed)

with st.expander("Export for slides"):
    iv.export(fit, entry, opts.method, proj, counts)
