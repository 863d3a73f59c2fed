"""Pieces of the Islands page for the recipe and the alignment measure: the
recipe toggle, the alignment beside the island count and as a curve, and the
authors' frames beside the aligned ones.

Each reads a film (`apm_viz.film.IslandsFilm`) and draws; the authors' frames
are computed on request, one snapshot at a time, and kept in the film.
"""

from __future__ import annotations

import streamlit as st

from apm_viz.figures.curves import curve_figure
from apm_viz.figures.maps import island_map_figure
from apm_viz.recipes import ALIGNED_ITERS, AUTHORS_TTT, QUERIES, QUERY_CAN_SHOW

from .sidebar import RECIPE_KEY

RECIPE_HELP = ("The authors' code: query [T | p_xy] (unless the sidebar sets one), N(0, 0.01) initialisation, "
               "Adam 1e-4 x0.1 every 200 iterations, 1200 iterations, attention pooling with 8 heads, a frame "
               "every 50 iterations; their frames are scikit-learn t-SNE (3 components, perplexity 3, random "
               "init), each frame on its own, shown beside the aligned ones once training pauses or ends.")


def _recipe_changed() -> None:
    ss = st.session_state
    ss[RECIPE_KEY] = "authors" if ss["recipe_toggle"] else "aligned"
    ss["iters"] = AUTHORS_TTT["iters"] if ss["recipe_toggle"] else ALIGNED_ITERS


def recipe_toggle(where=None) -> None:
    """The "authors' recipe" toggle. Its value lives under `sidebar.RECIPE_KEY`, so the
    sidebar's choice (and every page) knows it; switching sets the recipe's iterations."""
    ss = st.session_state
    ss["recipe_toggle"] = ss.get(RECIPE_KEY, "aligned") == "authors"
    (where or st).toggle("The authors' recipe", key="recipe_toggle", on_change=_recipe_changed, help=RECIPE_HELP)


def queries_note() -> str:
    """What each query can show, one sentence each (markdown)."""
    return "\n".join(f"- {QUERY_CAN_SHOW[q]}" for q in QUERIES)


def alignment_text(film, k: int) -> str:
    """"teacher 0.59 / position 0.45" for frame k."""
    rows = film.alignment()
    if k >= len(rows):
        return ""
    _, t, p = rows[k]
    return f"teacher {t:.2f} / position {p:.2f}"


ALIGNMENT_CAPTION = ("Share of the field's top 3 principal directions in the teacher grid's top-10 subspace, and in "
                     "the span of 15 smooth positional patterns. A random field scores about 0.04 and 0.06 at 16x16.")


def alignment_curve(rows, iteration: int):
    """The plotly curve of teacher share and position share over the snapshots
    (`FilmFrames.alignment` rows), the current iteration marked."""
    series = {"teacher share": [(i, t) for i, t, _ in rows], "position share": [(i, p) for i, _, p in rows]}
    fig = curve_figure(series, "alignment of the field's top 3 directions", "share", current=iteration)
    fig.update_yaxes(range=[0, 1.02])
    return fig


def alignment_chart(film, iteration: int) -> None:
    """Teacher share and position share over the snapshots, the current iteration marked."""
    st.plotly_chart(alignment_curve(film.alignment(), iteration), width="stretch")
    st.caption(ALIGNMENT_CAPTION)


def honesty_note(film) -> None:
    """Say so when the run's settings cannot show the image's structure."""
    cfg = film.run.config
    if "grid" not in cfg.loss and not cfg.apm_config().local_patch:
        st.info(f"This run reads {QUERIES['authors']} with {cfg.loss} supervision: every location gets the same "
                "gradient and no pixels of its own, so these islands follow the positional code, not the image.",
                icon="ℹ️")


def authors_panel(film, k: int, aligned_colors, running: bool) -> None:
    """The authors' frame of snapshot k beside the aligned one (authors' recipe only)."""
    if st.session_state.get(RECIPE_KEY) != "authors":
        return
    st.markdown("**The authors' frames beside the aligned ones**")
    if running:
        st.caption("The authors' frame (scikit-learn t-SNE, seconds per frame) is computed once training pauses "
                   "or ends.")
        return
    dims = st.radio("Authors' map", (3, 1), horizontal=True, key="authors_dims",
                    format_func=lambda d: "3 components (RGB)" if d == 3 else "1 component (grayscale)")
    with st.spinner("scikit-learn t-SNE of this frame…"):
        _, colors = film.authors_frame(k, dims)
    cols = st.columns(2)
    cols[0].plotly_chart(island_map_figure(aligned_colors, "aligned openTSNE (colours carry over)"),
                         width="stretch", config={"displayModeBar": False})
    cols[1].plotly_chart(island_map_figure(colors, "authors': scikit-learn t-SNE, this frame alone"),
                         width="stretch", config={"displayModeBar": False})
