"""Test-time classification: CLIP's zero-shot answer against an APM trained on
the one image (the paper's TTT), on the clean or corrupted picture. The run
trains in a worker process; this page reads it."""

import streamlit as st

from ui import classification as cls
from ui import runs
from ui.state import require_choice

st.title("Test-time classification")
choice = require_choice()
st.caption("The image and the seed come from the sidebar; its teacher, grid, preset and supervision are "
           "the Islands page's and do not apply here: the teacher is the CLIP chosen below.")

setup = cls.setup(choice)
run = runs.current(cls.PAGE, setup.key) if setup is not None else runs.latest(cls.PAGE)
run = cls.controls(run, setup, choice)

with st.expander("What you are looking at", expanded=run is None):
    st.markdown(
        "CLIP classifies the picture **zero-shot**: its image embedding against one text embedding per "
        "class (the prompts averaged), cosine times CLIP's logit scale, softmax. Then a fresh APM is "
        "distilled on this one image from CLIP's image embedding (**test-time training**, the token loss). "
        "Its pooled global output lives in the same space, so it is classified the same way at every "
        "iteration. As the loss falls, the APM's answer tends to CLIP's; what TTT changes is where it stops. "
        "The paper's Tables 1 and 2 report this over whole data sets: `python -m apm_viz evaluate`.")

cls.weights_notice(run, setup)
cls.progress_line(run)
if run is not None and run.view.result is not None and run.view.result.run.status == "diverged":
    st.error(run.view.result.run.message)
iteration = cls.results(run)
cls.export(run, setup, iteration)
