"""The Teacher vs APM page's pieces: the comparison of one film, its maps,
its numbers, the export, and the APM queried between the teacher's locations.

A film here is a run's view (`apm_viz.jobs.FilmView`, trained in a worker) or
the Islands page's; everything is read from it and kept per snapshot
(`apm_viz.compare.Comparison`), so moving a slider only reads.
"""

from __future__ import annotations

from typing import Optional

import streamlit as st

from apm_viz.compare import DEFAULT_THRESHOLD, METRICS, Comparison, summary
from apm_viz.figures.compare import comparison_slide, error_unit
from apm_viz.figures.curves import curve_figure
from apm_viz.figures.maps import error_map_figure, image_figure, island_map_figure
from apm_viz.names import safe_stem
from apm_viz.worker import Handle

from . import runs
from .downloads import figure_button, slide_options

NO_BAR = {"displayModeBar": False}


def comparison(film) -> Comparison:
    """One Comparison per film, kept in the session (frames and errors are cached inside)."""
    store = st.session_state.setdefault("tva_comparisons", {})
    entry = store.get(id(film))
    if entry is None or entry[0] is not film:
        store.clear()
        entry = store[id(film)] = (film, Comparison(film.teacher, film.run))
    return entry[1]


def progress_text(film) -> str:
    run = film.run
    last = run.terms["grid"][-1] if run.terms.get("grid") else (0, float("nan"))
    return f"iteration {last[0]}/{run.config.iters} · grid MSE {last[1]:.3e} · {run.seconds:.1f} s of training"


def progress(film, run: Optional[Handle]) -> None:
    """The fit's progress line; while its run trains it polls, and reruns the page when a snapshot or the
    state is new. A film without a run of this page (the Islands page's) is drawn once."""
    def line(h: Optional[Handle]) -> None:
        st.progress(min(film.iteration / max(film.run.config.iters, 1), 1.0), text=progress_text(film))
        said = runs.status_line(h) if h is not None else None
        if said:
            st.caption(said)

    if run is None:
        line(None)
    else:
        runs.progress(run, line, lambda h: (h.id, h.status, len(film.run.snapshots)))


def error_options() -> tuple[str, bool, float]:
    opts = st.columns([2, 2, 3])
    metric = opts[0].radio("Error", list(METRICS), format_func=METRICS.get, horizontal=True, key="tva_metric")
    fixed = opts[1].radio("Error colours", ("min-max per map (paper)", "fixed over the run"), horizontal=True,
                          key="tva_scale") != "min-max per map (paper)"
    threshold = opts[2].slider("Reproduced if error under" + (" (relative L1)" if metric == "l1" else " (1 − cos)"),
                               0.0, 1.0, DEFAULT_THRESHOLD[metric], 0.01, key=f"tva_threshold_{metric}")
    return metric, fixed, threshold


def maps(film, comp: Comparison, it: int, metric: str, fixed: bool, live: bool, stem: str) -> None:
    """Input, teacher grid, APM grid and error map at `it`; their export when the run is not training."""
    run = film.run
    frame, err = comp.frame(it), comp.error(it, metric)
    unit = error_unit(comp, metric)
    zmax = float(comp.error(run.iterations[0], metric).max()) if fixed else None
    cols = st.columns(4)
    cols[0].plotly_chart(image_figure(film.teacher.image, "input"), width="stretch", key="tva_input", config=NO_BAR)
    cols[1].plotly_chart(island_map_figure(frame.teacher_colors, f"teacher grid · {run.teacher_model}"),
                         width="stretch", key="tva_teacher", config=NO_BAR)
    cols[2].plotly_chart(island_map_figure(frame.apm_colors, f"APM grid · iteration {frame.iteration}"),
                         width="stretch", key="tva_apm", config=NO_BAR)
    cols[3].plotly_chart(error_map_figure(err, "error" + (" (min-max scaled)" if not fixed else ""), unit,
                                          zmin=0.0 if fixed else None, zmax=zmax),
                         width="stretch", key="tva_error", config=NO_BAR)
    span = "0 (dark) to the first snapshot's maximum, the same for every iteration" if fixed else \
        "this map's own minimum (dark) to its maximum (bright)"
    st.caption(f"Error colours: {span}. This map spans {float(err.min()):.3g} to {float(err.max()):.3g} {unit}.")
    if not live:
        with st.expander("Export for slides"):
            style, fmt, dpi = slide_options("tva_export")
            figure_button("Teacher vs APM", lambda s: comparison_slide(comp, it, s, metric, fixed), fmt, style, dpi,
                          f"{safe_stem(stem)}-teacher-vs-apm-it{frame.iteration:04d}.{fmt}", "tva_dl_figure")
            st.caption(f"Input, teacher grid, APM grid and error map at iteration {frame.iteration}, "
                       "colours as above. The file is made when you click.")
    if "rgb" in run.terms:
        cols = st.columns(4)
        cols[0].plotly_chart(island_map_figure(film.teacher.pooled_rgb, "image pooled to the grid"),
                             width="stretch", key="tva_pooled", config=NO_BAR)
        cols[1].plotly_chart(island_map_figure(run.snapshot(it).rgb, f"APM RGB field · iteration {frame.iteration}"),
                             width="stretch", key="tva_rgb", config=NO_BAR)


def numbers(comp: Comparison, it: int, metric: str, threshold: float) -> None:
    unit = "L1" if metric == "l1" else "1 − cos"
    unit = f"L1 over {comp.teacher.grid.shape[-1]} channels" if metric == "l1" else unit
    stats = comp.stats(it, metric, threshold)
    curve = comp.curve(metric, relative=True)
    cols = st.columns(4)
    cols[0].metric(f"Mean error ({unit})", f"{stats.mean:.4g}")
    cols[1].metric(f"Max error ({unit})", f"{stats.max:.4g}")
    cols[2].metric("Mean relative L1 error", f"{stats.relative:.3f}",
                   delta=f"{stats.relative - curve[0][1]:+.3f} since iteration {curve[0][0]}" if metric == "l1" else None,
                   delta_color="inverse")
    cols[3].metric(f"Locations under {threshold:g}", f"{100 * stats.share_under:.1f} %")
    s = summary(comp)
    st.caption(f"Mean relative L1 error: {s['first']:.3f} at iteration {s['first_iteration']}, {s['last']:.3f} at "
               f"iteration {s['last_iteration']} ({100 * s['last'] / max(s['first'], 1e-12):.1f} % of the start), "
               f"after {s['seconds']:.1f} s of training.")
    y = "mean relative L1 error" if metric == "l1" else "mean 1 − cos"
    st.plotly_chart(curve_figure({"APM vs teacher": curve}, "error over iterations", y, current=it, log_y=True),
                    width="stretch", key="tva_curve")


def between_locations(film, comp: Comparison) -> None:
    """The final APM queried at 2x and 4x the teacher's grid (once the run has ended)."""
    st.subheader("Between the teacher's locations")
    model = film.model() if hasattr(film, "model") else None
    if model is None:
        st.caption("Shown once the run is done.")
        return
    labels, now = film.run.iterations, film.iteration
    image = film.teacher.input_tensor()  # as the teacher saw it, normalised as its weights expect
    colours = comp.frame(labels[-1]).projection
    h = film.teacher.grid_size
    cols = st.columns(3)
    cols[0].plotly_chart(island_map_figure(colours.colors(film.teacher.grid), f"teacher grid · {h}x{h}"),
                         width="stretch", key="tva_q1", config=NO_BAR)
    for col, scale in zip(cols[1:], (2, 4)):
        q = comp.query(model, image, scale, now)
        col.plotly_chart(island_map_figure(colours.colors(q.field), f"APM queried at {h * scale}x{h * scale}"),
                         width="stretch", key=f"tva_q{scale}", config=NO_BAR)
    st.caption(f"The APM as the run left it, after iteration {now} (the latest model, not the selected snapshot), "
               f"coloured with the projection fitted at iteration {labels[-1]}. Every finer location is one more "
               "independent query of the same MLP.")
