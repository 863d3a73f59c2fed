"""Efficiency: the paper's Fig. 2 on this machine. How long the APM needs for
the whole field when it processes k locations at once, against one forward of
the teacher on the same image."""

import streamlit as st

from apm_viz.efficiency import DEFAULT_CHUNKS, PAPER_FIG2, measure_fig2
from apm_viz.figures.efficiency import fig2_figure
from apm_viz.images import to_array
from apm_viz.model import PRESETS
from ui.state import require_choice

st.title("Efficiency")
choice = require_choice()

st.markdown(
    "Every location is an independent query of the same MLP (*a patch is a batch*), so the APM can compute "
    "its field a few locations at a time or all at once. A ViT's patches attend to each other: it always "
    "processes the whole image. This measures both on **your** machine, with the sidebar's image, grid and "
    "teacher; the APM keeps random weights (only speed is measured).")

ss = st.session_state
cols = st.columns(3)
preset = cols[0].selectbox("APM preset", list(PRESETS), index=list(PRESETS).index(choice.preset),
                           key="eff_preset")
repeats = int(cols[1].number_input("Repeats (median)", 1, 10, 3, key="eff_repeats"))
budget = float(cols[2].number_input("Seconds per chunk size, at most", 0.1, 60.0, 2.0, step=0.5,
                                    key="eff_budget",
                                    help="Tiny chunks of a big preset take long: past this, only the passes "
                                         "that fit are timed and the total is scaled up (marked extrapolated)."))

if st.button("Measure", type="primary", key="eff_measure"):
    bar = st.progress(0.0, text="starting…")
    image = to_array(choice.image.image, choice.teacher.pixels(choice.grid))
    ss["fig2"] = measure_fig2(choice.teacher, image, preset, DEFAULT_CHUNKS, repeats, budget,
                              progress=lambda f, what: bar.progress(min(f, 1.0), text=what))
    bar.empty()

result = ss.get("fig2")
if result is None:
    st.caption("Press **Measure** (a few seconds for the laptop preset; longer for the paper's sizes).")
    st.stop()

st.plotly_chart(fig2_figure(result), width="stretch", key="fig2_chart")
best = min(result.field, key=lambda t: t.seconds)
st.markdown(
    f"**{result.locations} locations**, APM {result.preset} ({result.apm_parameters / 1e6:.1f} M parameters, "
    f"{result.macs_per_location / 1e6:.2f} M multiply-adds per location) against {result.teacher} "
    f"({result.teacher_parameters / 1e6:.1f} M parameters) on {result.device} with {result.threads} thread(s). "
    f"Fastest APM field: {best.seconds:.3g} s at {best.chunk} at once; teacher forward {result.teacher_seconds:.3g} s.")
st.dataframe(result.rows(), width="stretch", key="fig2_table")
st.caption(f"Dashed lines: {PAPER_FIG2['note']}. The paper's numbers come from a GPU, yours from this "
           "machine, so compare the shapes of the curves, not the seconds.")
