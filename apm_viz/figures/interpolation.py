"""Latent interpolation: the walk v_i = v1 + (v2 - v1) i / n between two
images' trigger columns, decoded to RGB frames and their island maps.

Screen: `walk_gif`, the decoded frames as a looping GIF (the page shows
the frames themselves with `figures.maps.upscale`); `strip`, the frames
side by side in one picture. Slides and files:
`interpolation_figure`, the walk as a strip labelled i/n; `walk_frames` and
`walk_animation_bytes`, the walk as a GIF or an MP4 stamped with i/n.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..errors import ApmVizError
from ..islands import islands_text
from ..render import animation_to_bytes, figure_to_rgb
from .maps import draw_map, upscale
from .style import Style, get_style, new_figure, slide_context


def _walk_label(i: int, n: int) -> tuple[str, bool]:
    """'i = 3/8' (ends marked A and B) and whether the step extrapolates past an end."""
    tag = "  A" if i == 0 else "  B" if i == n else ""
    return f"i = {i}/{n}{tag}", i < 0 or i > n


def interpolation_figure(frames: np.ndarray, steps: Sequence[int], n: int, style: Style,
                         islands: Optional[np.ndarray] = None, counts: Optional[Sequence[int]] = None,
                         names: Optional[Sequence[str]] = None, max_cols: int = 12):
    """The walk v_i = v1 + (v2 − v1) i / n as a strip: the decoded RGB frame of
    every step, labelled i/n, and optionally its islands (one colour space
    for the whole walk) in a row under it. More than `max_cols` steps wrap.

    frames: (K, H, W, 3) in [0, 1]; steps: the K values of i; islands:
    (K, h, w, 3) or None; counts: K island counts; names: (A, B) for the title.
    Extrapolated steps (i < 0 or i > n) are labelled in the accent colour."""
    k = len(frames)
    if k == 0 or len(steps) != k:
        raise ApmVizError("the strip needs one step i per frame")
    if islands is not None and len(islands) != k:
        raise ApmVizError("the islands row needs one map per frame")
    chunks = -(-k // max_cols)
    cols = -(-k // chunks)  # rows as even as they come: 13 steps wrap as 7 + 6, not 12 + 1
    per = 2 if islands is not None else 1
    gap = 0.1
    tile = min(1.8, (15.6 - (cols - 1) * gap) / cols)
    label_in = 0.55
    row_h = tile + label_in
    title_in = 0.9 if names else 0.2
    w, h = 16.0, title_in + chunks * per * row_h + 0.1
    fig = new_figure(style, (w, h))
    x0 = (w - cols * tile - (cols - 1) * gap) / 2
    for j in range(k):
        r, c = divmod(j, cols)
        label, extra = _walk_label(int(steps[j]), n)
        for row in range(per):
            y = h - title_in - (r * per + row + 1) * row_h
            ax = fig.add_axes(((x0 + c * (tile + gap)) / w, y / h, tile / w, tile / h))
            if row == 0:
                draw_map(ax, frames[j], style)
                ax.set_title(label, fontsize=style.size * 0.75, pad=6,
                             color=style.palette[1] if extra else style.foreground,
                             fontweight="bold" if int(steps[j]) in (0, n) else "normal")
            else:
                draw_map(ax, islands[j], style)
                if counts is not None:
                    ax.set_title(islands_text(counts[j]), fontsize=style.size * 0.7, pad=6, color=style.muted)
    if names:
        a, b = names[0], names[1]
        sub = "decoded frames" + (", and their islands below" if islands is not None else "")
        fig.suptitle(f"A: {a}  →  B: {b}", y=1 - 0.3 / h, va="center")
        fig.text(0.5, 1 - 0.72 / h, sub, ha="center", va="center", color=style.muted, fontsize=style.size * 0.75)
    return fig


def walk_frames(frames: np.ndarray, steps: Sequence[int], n: int, style: str = "light",
                islands: Optional[np.ndarray] = None, names: Optional[Sequence[str]] = None, bounce: bool = True,
                dpi: float = 100) -> list[np.ndarray]:
    """The walk as animation frames (H, W, 3) uint8, each stamped with its i/n:
    the decoded RGB frame, beside its islands when given. bounce: forwards then
    backwards (K + K − 2 frames), so a loop has no jump from B back to A."""
    st = get_style(style)
    k = len(frames)
    if k == 0 or len(steps) != k:
        raise ApmVizError("the walk needs one step i per frame")
    drawn = []
    with slide_context(st):
        for j in range(k):
            cols = 2 if islands is not None else 1
            fig = new_figure(st, (5.6 * cols, 6.6))
            axes = fig.subplots(1, cols, squeeze=False)[0]
            draw_map(axes[0], frames[j], st)
            if islands is not None:  # alone, the frame needs no name
                axes[0].set_title("decoded RGB", pad=8, color=st.muted, fontsize=st.size * 0.85)
                draw_map(axes[1], islands[j], st)
                axes[1].set_title("islands", pad=8, color=st.muted, fontsize=st.size * 0.85)
            label, extra = _walk_label(int(steps[j]), n)
            if extra:
                label += "  (extrapolated)"
            fig.suptitle(label, y=0.96, color=st.palette[1] if extra else st.foreground, fontsize=st.size * 1.15)
            if names:
                fig.text(0.5, 0.885, f"{names[0]} → {names[1]}", ha="center", va="center", color=st.muted,
                         fontsize=st.size * 0.75)
            fig.subplots_adjust(left=0.03, right=0.97, bottom=0.03, top=0.82 if islands is not None else 0.85,
                                wspace=0.06)
            drawn.append(figure_to_rgb(fig, dpi))
    order = list(range(k))
    if bounce and k > 2:
        order += order[-2:0:-1]
    return [drawn[j] for j in order]


def walk_animation_bytes(frames: np.ndarray, steps: Sequence[int], n: int, fmt: str, style: str = "light",
                         islands: Optional[np.ndarray] = None, names: Optional[Sequence[str]] = None,
                         fps: float = 6.0, bounce: bool = True) -> bytes:
    """The interpolation walk as GIF or MP4 (see `walk_frames`); a bouncing
    loop does not pause at its last frame, a one-way walk holds B for 1 s."""
    pictures = walk_frames(frames, steps, n, style, islands, names, bounce)
    return animation_to_bytes(pictures, fmt, fps, hold_last=0.0 if bounce else 1.0)


def strip(frames: Sequence[np.ndarray], size: int = 128, gap: int = 4) -> np.ndarray:
    """Frames (h, w, 3) in [0, 1] side by side, each `size` px (nearest
    neighbour), `gap` px of white between: (size, K * size + (K - 1) * gap, 3) uint8."""
    if not len(frames):
        raise ApmVizError("no frames to draw")
    canvas = np.full((size, len(frames) * size + (len(frames) - 1) * gap, 3), 255, np.uint8)
    for k, frame in enumerate(frames):
        x = k * (size + gap)
        canvas[:, x : x + size] = upscale(frame, size)
    return canvas


def walk_gif(frames: Sequence[np.ndarray], size: int = 224, duration_ms: int = 150,
             bounce: bool = True) -> bytes:
    """Frames (h, w, 3) in [0, 1], each `size` px (nearest neighbour), as an
    endlessly looping animated GIF (bytes), `duration_ms` per frame.

    bounce: play forwards then backwards, so the loop has no jump from B to A.
    """
    if not len(frames):
        raise ApmVizError("no frames to animate")
    order = list(range(len(frames)))
    if bounce and len(frames) > 2:
        order += order[-2:0:-1]
    return animation_to_bytes([upscale(frames[k], size) for k in order], "gif", fps=1000 / duration_ms,
                              hold_last=0.0)
