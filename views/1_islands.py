"""Islands: overfit an APM on the image step by step and watch its field split
from wholes into parts."""

import numpy as np
import streamlit as st

from apm_viz.figures.curves import curve_figure
from apm_viz.figures.maps import image_figure, island_map_figure
from apm_viz.figures.projections import camera_from_angles, scatter_figure
from apm_viz.islands import DEFAULT_MIN_SIZE, DEFAULT_TAU, ProjectionConfig
from ui.downloads import export_panel
from ui.state import drop_film, get_film, publish_if_done, require_choice

st.title("Islands of agreement")
choice = require_choice()

ss = st.session_state
top = st.columns([1, 1, 1, 1, 2])
iters = int(top[4].number_input("TTT iterations", 10, 2000, 250, step=10, key="iters"))
film = get_film(choice, iters)

if top[0].button("Run", icon=":material/play_arrow:", type="primary", width="stretch", disabled=film is not None and film.done):
    film = get_film(choice, iters, create=True)
    ss["running"] = True
if top[1].button("Pause", icon=":material/pause:", width="stretch", disabled=not ss.get("running")):
    ss["running"] = False
if top[2].button("Step", icon=":material/skip_next:", width="stretch", help="Ten TTT iterations, then pause"):
    film = get_film(choice, iters, create=True)
    ss["running"] = False
    with st.spinner("Ten iterations…"):
        film.advance(budget=float("inf"), max_iters=10)
if top[3].button("Reset", icon=":material/restart_alt:", width="stretch"):
    drop_film(choice, iters)
    film, ss["running"] = None, False

with st.expander("What you are looking at", expanded=film is None):
    st.markdown(
        "The APM folds the image into one **trigger column** and unfolds it at each grid location "
        "through one shared MLP; no location sees another. Test-time training fits it to the teacher. "
        "Each snapshot's output **field** is projected with t-SNE (every frame starts from the previous "
        "one, so colours keep their meaning); locations with similar vectors get similar colours. "
        "An **island** is a connected region whose neighbours agree (cosine similarity ≥ τ). "
        "Early iterations show blocks that follow the positional code; later, parts.")

opts = st.columns(5)
method = opts[0].radio("Projection", ("aligned t-SNE", "PCA"), horizontal=True, key="projection")
tau = opts[1].slider("Agreement τ", -1.0, 1.0, DEFAULT_TAU, 0.01, key="tau",
                     help="Neighbours with centred cosine similarity ≥ τ belong to one island")
min_size = int(opts[2].number_input("Smallest island", 1, 64, DEFAULT_MIN_SIZE, key="min_size"))
alpha = opts[3].slider("Overlay on image", 0.0, 1.0, 0.0, 0.05, key="alpha")
with opts[4]:
    azimuth = st.slider("3-D azimuth", -180, 180, 45, 5, key="azimuth")
    elevation = st.slider("3-D elevation", -90, 90, 25, 5, key="elevation")


@st.fragment(run_every=0.2 if ss.get("running") else None)
def film_view():
    film = get_film(choice, iters)
    if film is None:
        st.image(choice.image.image, caption=choice.image.name, width=320)
        st.caption("Press **Run** to start test-time training.")
        return
    if ss.get("running"):
        film.advance(budget=0.6)
        if film.done or film.run.finished and film.frames >= len(film.run.snapshots):
            ss["running"] = False
            publish_if_done(choice, iters, film)
            st.rerun(scope="app")
    prog = film.progress()
    loss = "—" if prog.loss is None else f"{prog.loss:.3e}"
    eta = "" if prog.eta is None or film.done else f" · about {prog.eta:.0f} s left"
    st.progress(min(prog.fraction, 1.0), text=f"iteration {prog.iteration}/{prog.iters} · loss {loss} · "
                f"{prog.frames}/{prog.snapshots} frames{eta}")
    if film.run.status == "diverged":
        st.error(film.run.message)
    elif film.run.status == "cancelled":
        st.info(film.run.message)
    n = film.frames
    if n == 0:
        return
    snaps = film.run.snapshots[:n]
    labels = [s.iteration for s in snaps]
    if ss.get("running"):
        # While training, follow the newest frame; the slider appears once paused or done.
        # (A slider moved by the page during timed reruns can hold a stale value in the browser.)
        it = labels[-1]
        st.caption("Showing the newest frame; pause to scrub through the iterations.")
    else:
        it = st.select_slider("TTT iteration", options=labels, value=labels[-1], key="frame_iter")
    k = labels.index(it)
    if method == "PCA":
        p3, p2 = film.projection(ProjectionConfig(method="pca", dims=3)), film.projection(
            ProjectionConfig(method="pca", dims=2))
    else:
        p3, p2 = film.live_projection("3d"), film.live_projection("2d")
    h, w = p3.grid
    sel = ss.get("scatter2d")
    picked = []
    if sel is not None and sel.get("selection"):
        picked = [int(p["point_index"]) for p in sel["selection"].get("points", [])]
    highlight = None
    if picked:
        highlight = np.zeros(h * w, bool)
        highlight[picked] = True
        highlight = highlight.reshape(h, w)
    counts = film.island_counts(tau, min_size)
    cols = st.columns(4)
    with cols[0]:
        st.plotly_chart(image_figure(film.teacher.image, "input", highlight), width="stretch", config={"displayModeBar": False})
    with cols[1]:
        st.plotly_chart(island_map_figure(p3.colors[k], f"APM islands · {counts[k][1]}", film.teacher.image, alpha,
                                          highlight), width="stretch",
                        config={"displayModeBar": False})
    with cols[2]:
        st.plotly_chart(scatter_figure(p2.coords[k], p2.colors[k], "2-D " + method, selected=picked or None),
                        width="stretch", key="scatter2d", on_select="rerun",
                        selection_mode=("points", "box", "lasso"))
    with cols[3]:
        st.plotly_chart(scatter_figure(p3.coords[k], p3.colors[k], "3-D " + method,
                                       camera=camera_from_angles(azimuth, elevation)),
                        width="stretch")
    if picked:
        st.caption(f"{len(picked)} locations selected in the 2-D plot are lit on the input and the map.")
    cols = st.columns([1, 2, 2])
    with cols[0]:
        tp = film.teacher_projection(ProjectionConfig(dims=3) if method != "PCA" else
                                     ProjectionConfig(method="pca", dims=3))
        st.plotly_chart(island_map_figure(tp.colors[0], f"teacher islands · {film.teacher_islands(tau, min_size)}"),
                        width="stretch", config={"displayModeBar": False})
    with cols[1]:
        series = {"total": film.run.losses}
        if len(film.run.terms) > 1:
            series.update(film.run.terms)
        st.plotly_chart(curve_figure(series, "loss", "MSE", current=it, log_y=True), width="stretch")
    with cols[2]:
        st.plotly_chart(curve_figure({"APM": counts, "teacher": [(labels[0], film.teacher_islands(tau, min_size)),
                                                                  (labels[-1], film.teacher_islands(tau, min_size))]},
                                     f"islands at τ = {tau:.2f}", "count", current=it),
                        width="stretch")
    if film.done:
        export_panel(choice, film, method == "PCA", tau, min_size, it, azimuth, elevation)


film_view()
