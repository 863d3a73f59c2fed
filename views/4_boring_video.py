"""Boring video: a static image repeated as 16 frames into MViTv2-S; a low block's
tokens for one frame give islands without any training. Beside them, APM's
islands (from the Islands page's run) and the sidebar teacher's."""

import streamlit as st

from apm_viz.video import BLOCK_GRIDS
from ui.state import require_choice
from ui.video_view import (across_frames, apm_islands, controls, export_expander, maps_row, mvit_islands,
                           mvit_model, scatters_row, teacher_islands, tokens_of)

st.title("Boring video")
choice = require_choice()

with st.expander("What you are looking at", expanded=False):
    st.markdown(
        "The APM authors' earlier work found islands of agreement without any training: repeat one image "
        "into a **boring video** (nothing moves), feed a video transformer (MViTv2) and project a low "
        "layer's tokens for one frame with t-SNE; colours follow the 3-D embedding. Here torchvision's "
        "MViTv2-S (Kinetics-400) sees the image 16 times at 224x224; its stem halves time, so every block "
        "holds 8 token frames. The authors took *the second or third layer* (blocks 1-2 here, 28x28). "
        "Zero padding in time makes the first and last token frames differ from the middle ones even "
        "though every input frame is the same: the frame table below shows by how much.")

# -- MViTv2 and its weights, then the controls ----------------------------------------------
video, model_key = mvit_model(choice)
tokens, cached = tokens_of(choice, video, model_key)
c = controls(choice)
timing = (f"MViTv2 forward: {tokens.seconds:.1f} s when computed" +
          (" · reused from the cache (changing block or frame costs nothing)" if cached else ""))

# -- three sets of islands: MViTv2, the Islands page's APM, the sidebar's teacher -----------
mv = mvit_islands(choice, model_key, tokens, c)
apm, film = apm_islands(choice, c)
teacher = teacher_islands(choice, c, film)

# -- side by side ---------------------------------------------------------------------------
h, w, _ = BLOCK_GRIDS[c.block]
st.caption(f"Island counts at τ = {c.tau:.2f} (smallest island {c.min_size}); grids differ "
           f"(MViTv2 {h}x{w}, APM and the teacher {choice.grid}x{choice.grid}), so compare shapes first. {timing}.")
maps_row(choice, tokens, c, mv, apm, teacher)
export_expander(choice, tokens, c, mv, apm, teacher)
scatters_row(c, mv, apm, teacher)

# -- does the boring video settle? ----------------------------------------------------------
st.subheader("Across frames")
across_frames(choice, model_key, tokens, c)
