"""Teacher vs APM: how closely the asynchronous field reproduces the teacher's
parallel grid, iteration by iteration (the paper's Fig. 5(ii))."""

import streamlit as st

from apm_viz.compare import (DEFAULT_ITERS, DEFAULT_THRESHOLD, METRICS, Comparison, converging_config,
                             paper_config, summary)
from apm_viz.figures.compare import teacher_vs_apm_figure
from apm_viz.figures.curves import curve_figure
from apm_viz.figures.maps import error_map_figure, image_figure, island_map_figure
from apm_viz.names import safe_stem
from ui.downloads import figure_button, slide_options
from ui.state import drop_config_film, get_config_film, latest_film, require_choice

st.title("Teacher vs APM")
choice = require_choice()

ss = st.session_state
SETTINGS = {"converging": "Converging (lr 1e-3, code up to π rad per step, local patch I_xy)",
            "paper": "Paper (lr 1e-4, the paper's code, no local patch)"}
OWN, SHARED = "Own run", "The Islands page's run"

islands = latest_film(choice)
shared_ok = islands is not None and "grid" in islands.run.config.loss
source = st.radio("Run to compare", (OWN, SHARED) if shared_ok else (OWN,), horizontal=True, key="tva_source")
if not shared_ok:
    st.caption("The Islands page's run can be compared here once it supervises the grid "
               "(sidebar: Supervision grid or grid + rgb).")

if source == SHARED:
    film = islands
    st.caption("Reading the Islands page's run; it advances while that page is open.")
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
    film = get_config_film(choice, config)
    if cols[3].button("Run", icon=":material/play_arrow:", type="primary", width="stretch", disabled=film is not None and film.done):
        film = get_config_film(choice, config, create=True)
        ss["tva_running"] = True
    if cols[4].button("Pause", icon=":material/pause:", width="stretch", disabled=not ss.get("tva_running")):
        ss["tva_running"] = False
    if cols[5].button("Reset", icon=":material/restart_alt:", width="stretch"):
        drop_config_film(choice, config)
        film, ss["tva_running"] = None, False

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


def comparison(film) -> Comparison:
    """One Comparison per film, kept in the session (frames and errors are cached inside)."""
    store = ss.setdefault("tva_comparisons", {})
    entry = store.get(id(film))
    if entry is None or entry[0] is not film:
        store.clear()
        entry = store[id(film)] = (film, Comparison(film.teacher, film.run))
    return entry[1]


@st.fragment(run_every=0.2 if ss.get("tva_running") and source == OWN else None)
def view():
    film_now = film if source == SHARED else get_config_film(choice, config)
    if film_now is None:
        st.image(choice.image.image, caption=choice.image.name, width=320)
        st.caption("Press **Run** to start test-time training.")
        return
    if source == OWN and ss.get("tva_running"):
        film_now.advance(budget=0.6)
        if film_now.run.finished:
            ss["tva_running"] = False
            if film_now.run.snapshots:
                ss["tva_iter"] = film_now.run.iterations[-1]
            st.rerun(scope="app")
    run = film_now.run
    last_loss = run.terms["grid"][-1][1] if run.terms.get("grid") else float("nan")
    st.progress(min(film_now.trainer.iteration / max(run.config.iters, 1), 1.0),
                text=f"iteration {film_now.trainer.iteration}/{run.config.iters} · grid MSE {last_loss:.3e} · "
                     f"{run.seconds:.1f} s of training")
    if run.status == "diverged":
        st.error(run.message)
    if not run.snapshots:
        return
    comp = comparison(film_now)
    labels = run.iterations
    if ss.get("tva_running") or ss.get("tva_iter") not in labels:
        ss["tva_iter"] = labels[-1]
    it = st.select_slider("TTT iteration", options=labels, key="tva_iter")

    opts = st.columns([2, 2, 3])
    metric = opts[0].radio("Error", list(METRICS), format_func=METRICS.get, horizontal=True, key="tva_metric")
    fixed = opts[1].radio("Error colours", ("min-max per map (paper)", "fixed over the run"), horizontal=True,
                          key="tva_scale") != "min-max per map (paper)"
    relative_l1 = metric == "l1"
    threshold = opts[2].slider("Reproduced if error under" + (" (relative L1)" if relative_l1 else " (1 − cos)"),
                               0.0, 1.0, DEFAULT_THRESHOLD[metric], 0.01, key=f"tva_threshold_{metric}")

    frame = comp.frame(it)
    err = comp.error(it, metric)
    d = film_now.teacher.grid.shape[-1]
    unit = f"L1 over {d} channels" if relative_l1 else "1 − cos"
    zmax = float(comp.error(labels[0], metric).max()) if fixed else None
    cols = st.columns(4)
    cols[0].plotly_chart(image_figure(film_now.teacher.image, "input"), width="stretch", key="tva_input",
                         config={"displayModeBar": False})
    cols[1].plotly_chart(island_map_figure(frame.teacher_colors, f"teacher grid · {run.teacher_model}"),
                         width="stretch", key="tva_teacher", config={"displayModeBar": False})
    cols[2].plotly_chart(island_map_figure(frame.apm_colors, f"APM grid · iteration {frame.iteration}"),
                         width="stretch", key="tva_apm", config={"displayModeBar": False})
    cols[3].plotly_chart(error_map_figure(err, "error" + (" (min-max scaled)" if not fixed else ""), unit,
                                          zmin=0.0 if fixed else None, zmax=zmax),
                         width="stretch", key="tva_error", config={"displayModeBar": False})
    span = "0 (dark) to the first snapshot's maximum, the same for every iteration" if fixed else \
        "this map's own minimum (dark) to its maximum (bright)"
    st.caption(f"Error colours: {span}. This map spans {float(err.min()):.3g} to {float(err.max()):.3g} {unit}.")
    if not (ss.get("tva_running") and source == OWN):
        with st.expander("Export for slides"):
            style, fmt, dpi = slide_options("tva_export")
            rel = comp.stats(it, metric).relative
            figure_button("Teacher vs APM", lambda s: teacher_vs_apm_figure(
                film_now.teacher.image, frame.teacher_colors, frame.apm_colors, err, s, frame.iteration, unit,
                run.teacher_model, 0.0 if fixed else None, zmax, f"mean relative L1 error {rel:.3f}"),
                fmt, style, dpi, f"{safe_stem(choice.image.name)}-teacher-vs-apm-it{frame.iteration:04d}.{fmt}",
                "tva_dl_figure")
            st.caption(f"Input, teacher grid, APM grid and error map at iteration {frame.iteration}, "
                       "colours as above. The file is made when you click.")

    if "rgb" in run.terms:
        cols = st.columns(4)
        cols[0].plotly_chart(island_map_figure(film_now.teacher.pooled_rgb, "image pooled to the grid"),
                             width="stretch", key="tva_pooled", config={"displayModeBar": False})
        cols[1].plotly_chart(island_map_figure(run.snapshot(it).rgb, f"APM RGB field · iteration {frame.iteration}"),
                             width="stretch", key="tva_rgb", config={"displayModeBar": False})

    stats = comp.stats(it, metric, threshold)
    curve = comp.curve(metric, relative=True)
    cols = st.columns(4)
    cols[0].metric(f"Mean error ({unit})", f"{stats.mean:.4g}")
    cols[1].metric(f"Max error ({unit})", f"{stats.max:.4g}")
    cols[2].metric("Mean relative L1 error", f"{stats.relative:.3f}",
                   delta=f"{stats.relative - curve[0][1]:+.3f} since iteration {curve[0][0]}" if relative_l1 else None,
                   delta_color="inverse")
    cols[3].metric(f"Locations under {threshold:g}", f"{100 * stats.share_under:.1f} %")
    s = summary(comp)
    st.caption(f"Mean relative L1 error: {s['first']:.3f} at iteration {s['first_iteration']}, {s['last']:.3f} at "
               f"iteration {s['last_iteration']} ({100 * s['last'] / max(s['first'], 1e-12):.1f} % of the start), "
               f"after {s['seconds']:.1f} s of training.")
    y = "mean relative L1 error" if relative_l1 else "mean 1 − cos"
    st.plotly_chart(curve_figure({"APM vs teacher": curve}, "error over iterations", y, current=frame.iteration,
                                 log_y=True), width="stretch", key="tva_curve")

    st.subheader("Between the teacher's locations")
    if ss.get("tva_running") and source == OWN:
        st.caption("Shown when the run is paused or done.")
        return
    model, image, now = film_now.trainer.model, film_now.trainer.image, film_now.trainer.iteration
    colours = comp.frame(labels[-1]).projection
    h = film_now.teacher.grid_size
    cols = st.columns(3)
    cols[0].plotly_chart(island_map_figure(colours.colors(film_now.teacher.grid), f"teacher grid · {h}x{h}"),
                         width="stretch", key="tva_q1", config={"displayModeBar": False})
    for col, scale in zip(cols[1:], (2, 4)):
        q = comp.query(model, image, scale, now)
        col.plotly_chart(island_map_figure(colours.colors(q.field), f"APM queried at {h * scale}x{h * scale}"),
                         width="stretch", key=f"tva_q{scale}", config={"displayModeBar": False})
    st.caption(f"The APM as it is now, after iteration {now} (the latest model, not the selected snapshot), "
               f"coloured with the projection fitted at iteration {labels[-1]}. Every finer location is one more "
               "independent query of the same MLP.")


view()
