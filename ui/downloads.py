"""Download buttons for figures, animations and the talk bundle.

They call the same export code as `python -m apm_viz export`. Files are built
only when a button is clicked (Streamlit's deferred download data), so a rerun
costs nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Callable, Optional

import streamlit as st

from apm_viz.errors import ApmVizError
from apm_viz.export import ExportOptions, animation_bytes, bundle_bytes, bundle_name, figure_bytes
from apm_viz.figures.islands import FIGURES, Talk
from apm_viz.figures.style import STYLES
from apm_viz.islands import ProjectionConfig
from apm_viz.names import MIME, safe_stem
from apm_viz.pipeline import Settings, numbers_json, result_from_film
from apm_viz.render import ANIMATION_FORMATS, FORMATS, figure_file

from .sidebar import ASSETS, Choice

LABELS = {"strip": "Strip", "pair": "Input + map", "tsne2d": "2-D scatter", "tsne3d": "3-D scatter",
          "loss": "Loss", "islands": "Island count", "alignment": "Alignment"}


def original_bytes(choice: Choice) -> Optional[bytes]:
    """The image file the choice was loaded from (a sample or the upload), when
    its bytes still match; the bundle then carries the very file."""
    candidates = []
    sample = ASSETS / choice.image.name
    if sample.is_file():
        candidates.append(lambda: sample.read_bytes())
    up = st.session_state.get("upload")
    if up is not None and hasattr(up, "getvalue"):
        candidates.append(up.getvalue)
    for read in candidates:
        try:
            data = read()
        except OSError:
            continue
        if hashlib.sha256(data).hexdigest() == choice.image.sha256:
            return data
    return None


def film_talk(choice: Choice, film, pca: bool, tau: float, min_size: int) -> Talk:
    """A `Talk` from the page's film, with the settings that recompute it."""
    name, weights, allow_download, _ = choice.teacher_key
    if pca:
        cfg3, cfg2 = ProjectionConfig(method="pca", dims=3), ProjectionConfig(method="pca", dims=2)
        p3, p2 = film.projection(cfg3), film.projection(cfg2)
    else:
        cfg3 = film.live_configs["3d"]
        p3, p2 = film.live_projection("3d"), film.live_projection("2d")
    settings = Settings(grid=choice.grid, teacher=name, weights=weights, allow_download=allow_download,
                        ttt=film.run.config, projection=cfg3, tau=tau, min_size=min_size, recipe=choice.recipe)
    result = result_from_film(film, choice.image, settings, tau, min_size, p3)
    return Talk(result, p2, original_bytes(choice))


def _lazy(build: Callable[[], bytes]) -> Callable[[], bytes]:
    def run() -> bytes:
        try:
            return build()
        except ApmVizError as err:  # the download then carries the one-line reason
            return f"export failed: {err}\n".encode()
    return run


def export_panel(choice: Choice, film, pca: bool, tau: float, min_size: int, iteration: int,
                 azimuth: float, elevation: float) -> None:
    """A compact "Export for slides" expander: a button per figure in the
    chosen format, the animations, and the whole bundle."""
    with st.expander("Export for slides"):
        c = st.columns([1, 1, 1, 1])
        style = c[0].radio("Style", list(STYLES), horizontal=True, key="export_style")
        fmt = c[1].radio("Format", FORMATS, horizontal=True, key="export_format",
                         help="SVG and PDF are vectors (maps, scatters and curves); PNG at the chosen DPI")
        dpi = int(c[2].number_input("PNG DPI", 50, 600, 200, step=50, key="export_dpi"))
        rotate = c[3].checkbox("Rotate 3-D animation", key="export_rotate")
        options = ExportOptions(style=style, dpi=dpi, frame=iteration, azimuth=float(azimuth),
                                elevation=float(elevation), rotate=rotate)
        talk = film_talk(choice, film, pca, tau, min_size)
        stem = safe_stem(choice.image.name, "image")
        st.caption(f"Per-frame figures at iteration {iteration}; the 3-D view from azimuth {azimuth}°, "
                   f"elevation {elevation}°. Files are made when you click.")
        cols = st.columns(len(FIGURES))
        for col, name in zip(cols, FIGURES):
            col.download_button(f"{LABELS[name]} .{fmt}", _lazy(lambda n=name: figure_bytes(talk, n, fmt, options).data),
                                file_name=f"{stem}-{name}-it{iteration:04d}.{fmt}", mime=MIME[fmt],
                                key=f"dl_{name}", on_click="ignore", width="stretch")
        cols = st.columns(len(ANIMATION_FORMATS) * 2 + 1)
        i = 0
        for anim, label in (("islands", "Islands film"), ("tsne3d", "3-D film")):
            for afmt in ANIMATION_FORMATS:
                cols[i].download_button(f"{label} .{afmt}",
                                        _lazy(lambda a=anim, f=afmt: animation_bytes(talk, a, f, options)),
                                        file_name=f"{stem}-{anim}.{afmt}", mime=MIME[afmt], key=f"dl_{anim}_{afmt}",
                                        on_click="ignore", width="stretch")
                i += 1
        cols[i].download_button("Talk bundle .zip", _lazy(lambda: bundle_bytes(talk, replace(options))),
                                file_name=f"{bundle_name(talk)}.zip", mime=MIME["zip"], key="dl_bundle",
                                on_click="ignore", type="primary", width="stretch",
                                help="Every figure in PNG, SVG and PDF, both films as GIF and MP4, metrics.csv, "
                                     "manifest.json and a README; `python -m apm_viz reproduce` remakes it")
        st.download_button("Metrics and manifest .json", _lazy(lambda: numbers_json(talk.result)),
                           file_name=f"{bundle_name(talk)}-metrics.json", mime="application/json", key="dl_numbers",
                           on_click="ignore", help="The bundle's metrics.json and manifest.json in one small file")


# -- the other pages: one style / format row, then buttons that build on click ------

def slide_options(key: str) -> tuple[str, str, int]:
    """Style, format and PNG DPI in one row, with widget keys under `key`; returns (style, fmt, dpi)."""
    c = st.columns(3)
    style = c[0].radio("Style", list(STYLES), horizontal=True, key=f"{key}_style")
    fmt = c[1].radio("Format", FORMATS, horizontal=True, key=f"{key}_format",
                     help="SVG and PDF are vectors (every map cell is a shape); PNG at the chosen DPI")
    dpi = int(c[2].number_input("PNG DPI", 50, 600, 200, step=50, key=f"{key}_dpi"))
    return style, fmt, dpi


def figure_button(label: str, build, fmt: str, style: str, dpi: int, file_name: str, key: str, where=None) -> None:
    """A download button for one figure; `build(style) -> matplotlib Figure`
    (a slide builder from `apm_viz.figures`) runs only when the button is clicked."""
    (where or st).download_button(f"{label} .{fmt}", _lazy(lambda: figure_file(build, fmt, style, dpi)),
                                  file_name=file_name, mime=MIME[fmt], key=key, on_click="ignore", width="stretch")


def animation_buttons(label: str, build: Callable[[str], bytes], stem: str, key: str, cols=None) -> None:
    """One download button per animation format; `build(fmt) -> bytes` runs on click."""
    cols = cols or st.columns(len(ANIMATION_FORMATS))
    for col, afmt in zip(cols, ANIMATION_FORMATS):
        col.download_button(f"{label} .{afmt}", _lazy(lambda f=afmt: build(f)), file_name=f"{stem}.{afmt}",
                            mime=MIME[afmt], key=f"{key}_{afmt}", on_click="ignore", width="stretch")
