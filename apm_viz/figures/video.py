"""The boring video: a still image repeated 16 times, seen by MViTv2, beside
the APM's and the teacher's island maps of the same image.

Screen: the page draws these with `figures.maps` and `figures.projections`;
the tokens and island maps come from `video`. Slides: `boring_video_figure`.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .maps import Panel, maps_figure
from .style import Style


def boring_video_figure(image: np.ndarray, mvit: Panel, teacher: Panel, style: Style, apm: Optional[Panel] = None,
                        title: Optional[str] = None):
    """The boring-video comparison: input | MViTv2 islands | APM islands |
    teacher islands, each with its island count; without an APM run the APM
    panel is left out. image: (224, 224, 3), the frame MViTv2 saw 16 times."""
    panels = [mvit] + ([apm] if apm is not None else []) + [teacher]
    fig, _ = maps_figure(image, panels, style, title, image_title="input (16 frames)")
    return fig
