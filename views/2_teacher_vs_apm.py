"""Teacher vs APM: how closely the asynchronous field reproduces the teacher's
parallel grid, iteration by iteration (the paper's Fig. 5(ii))."""

import streamlit as st

from apm_viz.compare import DEFAULT_ITERS, converging_config, paper_config
from apm_viz.jobs import film_job
from ui import runs
from ui import tva_view as tv
from ui.sidebar import teacher_output
from ui.state import islands_film, require_choice

st.title("Teacher vs APM")
choice = require_choice()

ss = st.session_state
SETTINGS = {"converging": "Converging (lr 1e-3, code up to π rad per step, local patch I_xy)",
            "paper": "Paper (lr 1e-4, the paper's code, no local patch)"}
OWN, SHARED = "Own run", "The Islands page's run"

islands = islands_film(choice)
shared_ok = islands is not None and "grid" in islands.run.config.loss
source = st.radio("Run to compare", (OWN, SHARED) if shared_ok else (OWN,), horizontal=True, key="tva_source")
if not shared_ok:
    st.caption("The Islands page's run can be compared here once it supervises the grid "
               "(sidebar: Supervision grid or grid + rgb).")

run = None
if source == SHARED:
    film = islands
    st.caption("Reading the Islands page's run; it trains on whether or not that page is open.")
else:
    cols = st.columns([1, 3, 1, 1, 1, 1])
    default_loss = choice.loss if choice.loss in ("grid", "grid+rgb") else "grid"
    loss = cols[0].selectbox("Supervision", ("grid", "grid+rgb"), index=("grid", "grid+rgb").index(default_loss),
                             key="tva_loss")
    settings = cols[1].radio("Settings", list(SETTINGS), format_func=SETTINGS.get, key="tva_settings",
                             help="Converging: the app's grid defaults. Paper: Adam 1e-4 and the paper's "
                                  "positional code, which fit the grid slowly.")
    iters = int(cols[2].number_input("TTT iterations", 10, 4000, DEFAULT_ITERS, step=10, key="tva_iters"))
    make = converging_config if settings == "converging" else paper_config
    config = make(loss, preset=choice.preset, iters=iters, seed=choice.seed)
    key = (choice.image.sha256, choice.teacher_key, choice.grid, config)
    run = runs.current("tva", key)
    if cols[3].button("Run", icon=":material/play_arrow:", type="primary", width="stretch",
                      disabled=run is not None and run.status in ("done", "running", "queued")):
        if run is None or run.status in ("cancelled", "failed"):
            run = runs.start("tva", key, lambda: film_job(key, teacher_output(choice), config, seed=choice.seed,
                                                          live={}, with_model=True))
        else:
            run.resume()
    if cols[4].button("Pause", icon=":material/pause:", width="stretch",
                      disabled=run is None or run.status not in ("running", "queued")):
        run.pause()
    if cols[5].button("Reset", icon=":material/restart_alt:", width="stretch"):
        runs.drop("tva", key)
        run = None
    film = None if run is None else run.view

with st.expander("What you are looking at", expanded=film is None):
    st.markdown(
        "The teacher computes its grid of patch tokens in parallel; the APM computes each location on its own, "
        "from the trigger column and that location's positional code. Both grids are coloured by **one** PCA "
        "fitted on the teacher's and the APM's vectors together (one centring, one colour range), so equal "
        "colours mean equal features. The **error map** is per location the sum over channels of "
        "|APM − teacher| (the paper's; drawn min-max scaled by default, the colour bar in feature units), or "
        "the cosine distance 1 − cos. The **relative error** divides the L1 error by the teacher vector's own "
        "L1 norm: a field of zeros scores 1. Below, the APM, a continuous field, is queried between the "
        "teacher's locations at 2x and 4x its grid.")

live = runs.is_live(run)
if film is None:
    st.image(choice.image.image, caption=choice.image.name, width=320)
    st.caption("Press **Run** to start test-time training.")
    st.stop()
tv.progress(film, run)
if film.run.status == "diverged":
    st.error(film.run.message)
if not film.run.snapshots:
    st.stop()
comp = tv.comparison(film)
labels = film.run.iterations
if live or ss.get("tva_iter") not in labels:
    ss["tva_iter"] = labels[-1]
it = st.select_slider("TTT iteration", options=labels, key="tva_iter")
metric, fixed, threshold = tv.error_options()
tv.maps(film, comp, it, metric, fixed, live, choice.image.name)
tv.numbers(comp, it, metric, threshold)
tv.between_locations(film, comp)
