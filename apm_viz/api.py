"""Notebook entry points: one call per page of the app, each returning an
object whose `figure()` is the page's plotly figure (shown inline in Jupyter),
`slide()` the slide figure (matplotlib, true vectors) and `export(folder)` the
files for a talk.

    film = apm_viz.islands_film("cat.jpg", grid=32, iters=250)
    film.figure(iteration=50)
    film.export("talk/")

Each runs the engine the app and the command line run (`pipeline.compute`,
`compare.Comparison`, `interpolate.fit_memory` and `walk`,
`classify.classify_image`, `video.BoringVideo`); nothing here computes on its
own. The names are not the modules' (`apm_viz.islands` is the module that
counts islands). `weights="random"` gives random-init teachers (offline, no
download); the figures then show what such a model sees, not trained parts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from .errors import ApmVizError
from .images import LoadedImage, load_image
from .islands import DEFAULT_MIN_SIZE, DEFAULT_TAU

Source = Union[str, os.PathLike, bytes, LoadedImage]

__all__ = ["islands_film", "teacher_vs_apm", "latent_walk", "classification", "boring_video",
           "Film", "TeacherVsApm", "LatentWalk", "Classification", "BoringVideoIslands"]


def _load(source: Source) -> tuple[LoadedImage, Optional[bytes]]:
    """The image and, for a file or bytes, the original bytes (bundled for reproduce)."""
    if isinstance(source, LoadedImage):
        return source, None
    image = load_image(source)
    return image, source if isinstance(source, bytes) else Path(source).read_bytes()


def _teacher(name: str, weights, offline: bool, seed: int):
    from .teachers import create_teacher

    return create_teacher(name, weights, not offline, seed=seed)


def _slide(build, style: str):
    """A slide figure `build(style) -> Figure` drawn in a slide style's fonts and colours."""
    from .figures.style import get_style, slide_context

    st = get_style(style)
    with slide_context(st):
        return build(st)


def _slides(folder, stem: str, build, formats: Sequence[str], style: str, dpi: float) -> list[Path]:
    """One slide figure (`build(style) -> Figure`) as folder/stem.FMT for each format."""
    from .names import safe_stem
    from .render import figure_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = folder / f"{safe_stem(stem)}.{fmt}"
        path.write_bytes(figure_file(build, fmt, style, dpi))
        paths.append(path)
    return paths


# -- Islands ------------------------------------------------------------------------

@dataclass
class Film:
    """An islands run, as the Islands page and `apm-viz islands` make it.

    result: `pipeline.IslandsResult` (settings, the teacher's output, the
    snapshots' fields (h, w, D), their 3-D projection, island counts).
    """

    result: "IslandsResult"  # noqa: F821
    image_bytes: Optional[bytes] = None

    @property
    def iterations(self) -> list[int]:
        """The snapshots' iterations."""
        return self.result.run.iterations

    @property
    def islands(self) -> list[tuple[int, int]]:
        """(iteration, island count) per snapshot; the teacher's own count is `result.teacher_islands`."""
        return self.result.islands

    @cached_property
    def talk(self):
        """The run with its 2-D projection, as the slides and the bundle need it (`figures.islands.Talk`)."""
        from .figures.islands import Talk

        return Talk.from_result(self.result, image_bytes=self.image_bytes)

    def figure(self, iteration: Optional[int] = None, kind: str = "map"):
        """The Islands page's plotly figure at the snapshot taken at or before
        `iteration` (None: the last): "map" (the island map), "input",
        "scatter" (the 3-D projection), "loss" or "islands" (curves)."""
        from .figures.curves import islands_curve, loss_curve
        from .figures.islands import _method, frame_index
        from .figures.maps import image_figure, island_map_figure
        from .figures.projections import scatter_figure

        res = self.result
        k = frame_index(self.iterations, iteration)
        it = self.iterations[k]
        p = res.projection
        if kind == "map":
            return island_map_figure(p.colors[k], f"APM islands · {res.islands[k][1]} · iteration {it}")
        if kind == "input":
            return image_figure(res.teacher.image, "input")
        if kind == "scatter":
            return scatter_figure(p.coords[k], p.colors[k], f"3-D {_method(p)} · iteration {it}")
        if kind == "loss":
            return loss_curve(res.run, current=it)
        if kind == "islands":
            return islands_curve(res.islands, res.teacher_islands, res.settings.tau, current=it)
        raise ApmVizError(f"unknown figure {kind!r}; choose map, input, scatter, loss or islands")

    def slide(self, name: str = "pair", iteration: Optional[int] = None, style: str = "light"):
        """One of the bundle's slide figures (`figures.islands.FIGURES`) as a matplotlib Figure."""
        from .figures.islands import matplotlib_figure

        return matplotlib_figure(self.talk, name, style, iteration)

    def export(self, folder, **options) -> Path:
        """The talk bundle (every figure and film, metrics, manifest, the image)
        under `folder` and as a zip beside it; options: `export.ExportOptions`'
        fields (style, dpi, frame, engine, formats, animations, ...). Returns the zip."""
        from .export import ExportOptions, write_bundle

        return write_bundle(self.talk, Path(folder), ExportOptions(**options))


def islands_film(image: Source, grid: int = 32, iters: Optional[int] = None, weights: Optional[str] = None,
                 progress=None, **options) -> Film:
    """Overfit an APM on one image and follow its islands over the iterations
    (the Islands page; `apm-viz islands`, whose options are the keywords here).

    image: a path, bytes or `images.LoadedImage`; grid: 16, 32 or 64 patches a
    side; iters: default the recipe's; weights: a teacher weights file,
    "random" or None (cache, then download unless offline=True, else random
    init with a warning); options: the command line's other run options by
    name (recipe, loss, query, preset, lr, seed, teacher, offline,
    projection, perplexity, components, tau, min_size, ...);
    progress(run) after every few iterations."""
    from .cli import run_options, settings_from_args
    from .pipeline import compute

    settings = settings_from_args(run_options(grid=grid, iters=iters, weights=weights, **options))
    loaded, data = _load(image)
    return Film(compute(loaded, settings, progress=progress), data)


# -- Teacher vs APM -----------------------------------------------------------------

@dataclass
class TeacherVsApm:
    """How closely the APM's field reproduces the teacher's grid (the paper's
    Fig. 5(ii)): `comparison` is a `compare.Comparison` over the run's snapshots."""

    comparison: "Comparison"  # noqa: F821

    @property
    def iterations(self) -> list[int]:
        return self.comparison.run.iterations

    def _iteration(self, iteration: Optional[int]) -> int:
        from .figures.islands import frame_index

        return self.iterations[frame_index(self.iterations, iteration)]

    def figure(self, iteration: Optional[int] = None, kind: str = "error", metric: str = "l1"):
        """The page's plotly figure: "error" (the error map per location),
        "teacher" or "apm" (both grids in one colour space), "curve" (the mean
        relative error over iterations); metric "l1" or "cosine"."""
        from .figures.compare import error_unit
        from .figures.curves import curve_figure
        from .figures.maps import error_map_figure, island_map_figure

        comp = self.comparison
        it = self._iteration(iteration)
        if kind == "error":
            return error_map_figure(comp.error(it, metric), f"error · iteration {it}", error_unit(comp, metric))
        if kind in ("teacher", "apm"):
            frame = comp.frame(it)
            return island_map_figure(frame.teacher_colors if kind == "teacher" else frame.apm_colors,
                                     f"teacher grid · {comp.run.teacher_model}" if kind == "teacher" else
                                     f"APM grid · iteration {it}")
        if kind == "curve":
            return curve_figure({"APM vs teacher": comp.curve(metric, relative=True)}, "error over iterations",
                                "mean relative L1 error" if metric == "l1" else "mean 1 − cos", current=it,
                                log_y=True)
        raise ApmVizError(f"unknown figure {kind!r}; choose error, teacher, apm or curve")

    def slide(self, iteration: Optional[int] = None, style: str = "light", metric: str = "l1", fixed: bool = False):
        """Input | teacher grid | APM grid | error map (`figures.compare.comparison_slide`)."""
        from .figures.compare import comparison_slide

        it = self._iteration(iteration)
        return _slide(lambda s: comparison_slide(self.comparison, it, s, metric, fixed), style)

    def export(self, folder, iteration: Optional[int] = None, formats: Sequence[str] = ("png", "svg", "pdf"),
               style: str = "light", dpi: float = 200, metric: str = "l1", fixed: bool = False) -> list[Path]:
        """The slide as folder/teacher-vs-apm-itNNNN.FMT per format."""
        from .figures.compare import comparison_slide

        it = self._iteration(iteration)
        return _slides(folder, f"teacher-vs-apm-it{it:04d}",
                       lambda s: comparison_slide(self.comparison, it, s, metric, fixed), formats, style, dpi)


def teacher_vs_apm(image: Source, grid: int = 32, iters: Optional[int] = None, loss: str = "grid",
                   recipe: str = "converging", teacher: str = "dinov2-small", weights: Optional[str] = None,
                   offline: bool = False, preset: str = "laptop", seed: int = 0, progress=None) -> TeacherVsApm:
    """Fit the APM's field to the teacher's grid (the Teacher vs APM page).

    loss: "grid" or "grid+rgb"; recipe: "converging" (the app's grid
    defaults) or "paper" (Adam 1e-4 and the paper's positional code);
    iters: default `compare.DEFAULT_ITERS`."""
    from .compare import DEFAULT_ITERS, Comparison, converging_config, paper_config
    from .pipeline import encode
    from .ttt import run_ttt

    if recipe not in ("converging", "paper"):
        raise ApmVizError(f"unknown recipe {recipe!r}; choose converging or paper")
    make = converging_config if recipe == "converging" else paper_config
    config = make(loss, preset=preset, iters=DEFAULT_ITERS if iters is None else iters, seed=seed)
    out = encode(_load(image)[0], _teacher(teacher, weights, offline, seed), grid)
    return TeacherVsApm(Comparison(out, run_ttt(out, config, progress=progress)))


# -- Latent interpolation ------------------------------------------------------------

@dataclass
class LatentWalk:
    """One APM fitted on several images (`memory`) and the walk between two of
    their trigger columns, every step unfolded into a frame (`walk`)."""

    memory: "Memory"  # noqa: F821
    walk: "Walk"  # noqa: F821

    @property
    def names(self) -> tuple[str, str]:
        return self.memory.names[self.walk.a], self.memory.names[self.walk.b]

    def figure(self, size: int = 96):
        """The walk's frames side by side, each `size` px, as a plotly image."""
        from .figures.interpolation import strip
        from .figures.maps import image_figure

        fig = image_figure(strip(self.walk.rgb, size), f"{self.names[0]} → {self.names[1]} · "
                                                       + ", ".join(self.walk.labels()))
        fig.update_layout(height=size + 60)
        return fig

    def dreams(self, count: int = 4, temperature: float = 1.0, seed: int = 0) -> np.ndarray:
        """Random trigger columns unfolded (`interpolate.dream`): (count, h, w, 3) in [0, 1]."""
        from .interpolate import dream

        return dream(self.memory, count, seed, temperature)

    def slide(self, style: str = "light"):
        """The walk as a labelled strip of frames (`figures.interpolation.interpolation_figure`)."""
        from .figures.interpolation import interpolation_figure

        w = self.walk
        return _slide(lambda s: interpolation_figure(w.rgb, w.steps, w.n, s, names=self.names), style)

    def export(self, folder, formats: Sequence[str] = ("png", "svg", "pdf"), animations: Sequence[str] = ("gif", "mp4"),
               style: str = "light", dpi: float = 200) -> list[Path]:
        """The strip as folder/walk.FMT and the walk as folder/walk.gif / .mp4 (bouncing loop)."""
        from .figures.interpolation import interpolation_figure, walk_animation_bytes

        w = self.walk
        paths = _slides(folder, "walk", lambda s: interpolation_figure(w.rgb, w.steps, w.n, s, names=self.names),
                        formats, style, dpi)
        for fmt in animations:
            path = Path(folder) / f"walk.{fmt}"
            path.write_bytes(walk_animation_bytes(w.rgb, w.steps, w.n, fmt, style, names=self.names))
            paths.append(path)
        return paths


def latent_walk(images: Sequence[Source], a=0, b=1, steps: int = 8, extrapolate: int = 0, grid: int = 16,
                iters: Optional[int] = None, teacher: str = "dinov2-small", weights: Optional[str] = None,
                offline: bool = False, preset: str = "laptop", seed: int = 0, progress=None) -> LatentWalk:
    """Fit one APM on all `images` (the Latent interpolation page), then walk
    v_i = v_a + (v_b − v_a) i / steps between images a and b (index or name).

    iters: default `interpolate.DEFAULT_ITERS`; extrapolate: steps past each end."""
    from .interpolate import fit_memory, memory_config, walk
    from .pipeline import encode

    loaded = [_load(s)[0] for s in images]
    model = _teacher(teacher, weights, offline, seed)
    outs = [encode(im, model, grid) for im in loaded]
    config = memory_config(preset=preset, seed=seed, **({} if iters is None else {"iters": iters}))
    memory = fit_memory(outs, config, names=[im.name for im in loaded], progress=progress)
    return LatentWalk(memory, walk(memory, a, b, steps, extrapolate=extrapolate))


# -- Test-time classification ---------------------------------------------------------

@dataclass
class Classification:
    """CLIP's zero-shot answer and the APM's, iteration by iteration
    (`result`: a `classify.ClassifyRun`; `settings`: what decided it)."""

    result: "ClassifyRun"  # noqa: F821
    settings: "EvalSettings"  # noqa: F821

    def figure(self, iteration: Optional[int] = None, kind: str = "top5"):
        """The page's plotly figure: "top5" (CLIP's and the APM's top-5 bars at
        `iteration`, None: the last) or "curves" (the top classes' probabilities)."""
        from .figures.classification import curves_figure, topk_figure

        if kind == "top5":
            return topk_figure(self.result, iteration)
        if kind == "curves":
            return curves_figure(self.result, current=iteration)
        raise ApmVizError(f"unknown figure {kind!r}; choose top5 or curves")

    def slide(self, iteration: Optional[int] = None, style: str = "light"):
        """Input | CLIP top-5 | APM top-5 as a matplotlib Figure."""
        from .figures.classification import classification_slide

        it = self.result.iterations - 1 if iteration is None else iteration
        return _slide(lambda s: classification_slide(self.result, it, s), style)

    def export(self, folder, formats: Sequence[str] = ("png", "svg", "pdf"), style: str = "light",
               dpi: float = 200) -> list[Path]:
        """classification.json (`classify.write_result`) and the slide at the last iteration."""
        from .classify import write_result
        from .figures.classification import classification_slide

        it = self.result.iterations - 1
        path = write_result(self.result, self.settings.to_dict(), Path(folder))
        return [path] + _slides(folder, "classification", lambda s: classification_slide(self.result, it, s),
                                formats, style, dpi)


def classification(image: Source, clip: str = "vit-b-16-openai", labels: str = "imagenet", iters: Optional[int] = None,
                   recipe: str = "laptop", corruption: str = "clean", severity: int = 5, weights: Optional[str] = None,
                   offline: bool = False, templates: str = "openai", seed: int = 0, progress=None) -> Classification:
    """Zero-shot and test-time classification of one image (`apm-viz classify`).

    clip: a key of `clip.CLIP_MODELS` ("tiny" is a two-block random CLIP for
    quick offline runs); labels: "imagenet", "cifar10" or a text file, one
    label a line; corruption, severity: an ImageNet-C corruption applied first."""
    from .classify import classify_image
    from .classify import recipe as make_recipe
    from .corruptions import CLEAN
    from .evaluate import EvalSettings, worker_for

    settings = EvalSettings(clip=clip, weights=weights, allow_download=not offline, labels=labels,
                            templates=templates, seed=seed, ttt=make_recipe(recipe, iters=iters, seed=seed))
    loaded = _load(image)[0]
    worker = worker_for(settings)
    result = classify_image(loaded, worker.clip, worker.classifier, settings.ttt, corruption,
                            severity if corruption != CLEAN else 0, seed=seed, progress=progress)
    return Classification(result, settings)


# -- The boring video ------------------------------------------------------------------

@dataclass
class BoringVideoIslands:
    """MViTv2's islands of one image repeated as a 16-frame video, beside the
    image teacher's (the Boring video page).

    tokens: `video.BoringVideoOutput` (every block's (8, h, w, D) tokens);
    mvit, teacher: `figures.maps.Panel`s (island colours (h, w, 3), title, count)."""

    tokens: "BoringVideoOutput"  # noqa: F821
    block: int
    frame: int
    mvit: "Panel"  # noqa: F821
    teacher: "Panel"  # noqa: F821
    title: str

    def figure(self, kind: str = "mvit"):
        """The island map of "mvit" (the chosen block and token frame) or "teacher" as a plotly figure."""
        from .figures.maps import island_map_figure

        if kind not in ("mvit", "teacher"):
            raise ApmVizError(f"unknown figure {kind!r}; choose mvit or teacher")
        p = self.mvit if kind == "mvit" else self.teacher
        return island_map_figure(p.colors, f"{p.title} · {p.islands} islands")

    def slide(self, style: str = "light"):
        """Input | MViTv2 islands | teacher islands, with their counts."""
        from .figures.video import boring_video_figure

        return _slide(lambda s: boring_video_figure(self.tokens.image, self.mvit, self.teacher, s, title=self.title),
                      style)

    def export(self, folder, formats: Sequence[str] = ("png", "svg", "pdf"), style: str = "light",
               dpi: float = 200) -> list[Path]:
        """The slide as folder/boring-video-blockB-frameF.FMT per format."""
        from .figures.video import boring_video_figure

        return _slides(folder, f"boring-video-block{self.block}-frame{self.frame}",
                       lambda s: boring_video_figure(self.tokens.image, self.mvit, self.teacher, s, title=self.title),
                       formats, style, dpi)


def boring_video(image: Source, block: int = 1, frame: int = 0, projection: str = "tsne", grid: int = 32,
                 weights: Optional[str] = None, teacher: str = "dinov2-small", teacher_weights: Optional[str] = None,
                 offline: bool = False, tau: float = DEFAULT_TAU, min_size: int = DEFAULT_MIN_SIZE,
                 seed: int = 0) -> BoringVideoIslands:
    """Repeat the image into a video that never moves, read MViTv2-S's tokens
    at `block` and token `frame` (the authors took blocks 1-2, frame 0), and
    colour both them and the image teacher's grid by a 3-D projection
    ("tsne" or "pca"); weights: MViTv2's (a file, "random" or None)."""
    from .figures.maps import Panel
    from .islands import ProjectionConfig, count_islands, project
    from .pipeline import encode
    from .video import PROJECT_SIDE, create_boring_video, pool_field

    if projection not in ("tsne", "pca"):
        raise ApmVizError(f"unknown projection {projection!r}; use tsne or pca")
    config = ProjectionConfig(method=projection, dims=3, seed=seed)
    loaded = _load(image)[0]
    tokens = create_boring_video(weights, allow_download=not offline, seed=seed).encode(loaded)
    field = tokens.field(block, frame)
    mvit = Panel(project([pool_field(field, PROJECT_SIDE)], config).colors[0], f"MViTv2 block {block} · frame {frame}",
                 count_islands(field, tau, min_size))
    out = encode(loaded, _teacher(teacher, teacher_weights, offline, seed), grid)
    dino = Panel(project([out.grid], config).colors[0], f"{teacher} teacher", count_islands(out.grid, tau, min_size))
    method = "t-SNE" if projection == "tsne" else "PCA"
    return BoringVideoIslands(tokens, block, frame, mvit, dino, f"{method} islands at τ = {tau:.2f}")
