"""Islands: overfit an APM on the image step by step and watch its field split
from wholes into parts. The run trains in a worker process; this page reads it."""

import streamlit as st

from apm_viz.jobs import film_job
from apm_viz.recipes import ALIGNED_ITERS
from ui import boot
from ui import islands_view as iv
from ui import runs
from ui.islands_panels import honesty_note, queries_note, recipe_toggle
from ui.downloads import export_panel
from ui.sidebar import teacher_line, teacher_output
from ui.state import film_key, require_choice

st.title("Islands of agreement")
choice = require_choice()
st.caption(teacher_line(choice))

ss = st.session_state
top = st.columns([1, 1, 1, 1, 1, 2])
ss.setdefault("iters", ALIGNED_ITERS)  # the recipe toggle sets it too: no second default here
iters = int(top[5].number_input("TTT iterations", 10, 2000, step=10, key="iters"))
recipe_toggle(top[5])
key = film_key(choice, iters)
run = runs.current("islands", key)


def new_job():
    return film_job(key, teacher_output(choice), choice.ttt_config(iters), seed=choice.seed)


fresh = run is None or run.status in ("cancelled", "failed")
pressed_on_load = ss.pop(boot.RUN_ON_LOAD, False) and fresh  # Run pressed before the engine had loaded
if top[0].button("Run", icon=":material/play_arrow:", type="primary", width="stretch",
                 disabled=run is not None and run.status in ("done", "running", "queued")) or pressed_on_load:
    if fresh:
        run = runs.start("islands", key, new_job)
    else:
        run.resume()
if top[1].button("Pause", icon=":material/pause:", width="stretch", disabled=not runs.is_live(run)
                 or run.status not in ("running", "queued")):
    run.pause()
if top[2].button("Step", icon=":material/skip_next:", width="stretch", help="Ten TTT iterations, then hold",
                 disabled=run is not None and run.status == "done"):
    if fresh:
        run = runs.start("islands", key, new_job, run=False)
    run.step(10)
if top[3].button("Reset", icon=":material/restart_alt:", width="stretch"):
    runs.drop("islands", key)
    run = None
playing = ss.get("playing", False)
if top[4].button("Stop" if playing else "Play", icon=":material/stop:" if playing else ":material/slideshow:",
                 width="stretch", disabled=run is None, help="Step through the computed frames at the chosen speed"):
    ss["playing"], ss["play_k"] = not playing, -1

with st.expander("What you are looking at", expanded=run is None):
    st.markdown(
        "The APM folds the image into one **trigger column** and unfolds it at each grid location "
        "through one shared MLP; no location sees another. Test-time training fits it to the teacher. "
        "Each snapshot's output **field** is projected with t-SNE (every frame starts from the previous "
        "one, so colours keep their meaning); locations with similar vectors get similar colours. "
        "A PCA preview of each snapshot is shown at once, until its t-SNE frame lands. "
        "An **island** is a connected region whose neighbours agree (cosine similarity ≥ τ). "
        "Early iterations show blocks that follow the positional code; later, parts. "
        "The query decides what the islands can follow:\n" + queries_note())

opts = iv.options()
iv.progress_line(run)
if run is not None:
    honesty_note(run.view)
if run is not None and run.view.run.status == "diverged":
    st.error(run.view.run.message)
elif run is not None and run.view.run.status == "cancelled":
    st.info(run.view.run.message or "cancelled")
iv.frames(run, opts, choice.image)
if run is not None and run.status == "done" and run.view.done:
    it = ss.get("frame_iter", run.view.run.iterations[-1])
    export_panel(choice, run.view, opts.method == "PCA", opts.tau, opts.min_size, it, opts.azimuth, opts.elevation)
