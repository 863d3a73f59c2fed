"""The islands film: a TTT run whose snapshots are projected as they arrive.

`FilmFrames` is what a film shows: the teacher, the run (losses, snapshots)
and the frames of its live projections, with the readings that pages and
exports draw (projections with colours, island counts, the teacher's own
projection). Every reading is computed once per frame and kept, so scrubbing
and changing tau compute nothing that was computed before.

`IslandsFilm` trains: it is advanced in small time slices (`advance`), each
new snapshot projected before training goes on, so training can be paused,
stepped, resumed or cancelled and each frame shown as soon as it exists. The
app runs it in a worker process (`apm_viz.jobs`), whose updates fill a
`FilmFrames` on the server side.

A PCA preview frame (cheap: milliseconds) is made for each snapshot first, so
there is a frame to show at once; the t-SNE frame replaces it when it lands.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from . import islands
from .alignment import alignment_rows
from .islands import DEFAULT_MIN_SIZE, DEFAULT_TAU, Projection, ProjectionConfig, Projector, independent_frame
from .recipes import islands_projection
from .teachers import TeacherOutput
from .ttt import Run, Trainer, TTTConfig

#: The projections a film computes while it trains.
LIVE = {"3d": ProjectionConfig(dims=3), "2d": ProjectionConfig(dims=2)}
#: The preview of each live projection: aligned PCA, fitted on the first frame's axes.
PREVIEW = {name: ProjectionConfig(method="pca", dims=cfg.dims) for name, cfg in LIVE.items()}


@dataclass
class Progress:
    iteration: int
    iters: int
    loss: Optional[float]
    frames: int
    snapshots: int
    seconds: float
    eta: Optional[float]

    @property
    def fraction(self) -> float:
        train = self.iteration / max(self.iters, 1)
        frames = self.frames / max(self.snapshots, 1)
        return 0.7 * train + 0.3 * frames


class FilmFrames:
    """A film's readable state: teacher, run, and per live projection its frames.

    coords[name]: per frame (N, dims) coordinates, N = h*w (the live
    projections, t-SNE by default); preview[name]: the PCA preview frames.
    Readings are cached per frame and safe to call from several threads.
    """

    def __init__(self, teacher: TeacherOutput, live: dict[str, ProjectionConfig], preview: bool = True):
        self.teacher = teacher
        self.live_configs = dict(live)
        self.coords: dict[str, list[np.ndarray]] = {name: [] for name in live}
        self.preview_coords: dict[str, list[np.ndarray]] = {name: [] for name in live} if preview else {}
        self.extra: dict[ProjectionConfig, Projection] = {}
        self.teacher_projections: dict[ProjectionConfig, Projection] = {}
        self.seconds = 0.0
        self._step_seconds: Optional[float] = None
        self._frame_seconds: Optional[float] = None
        self._read_lock = threading.RLock()
        self._colors: dict[tuple, Projection] = {}
        self._counts: dict[tuple, list[int]] = {}
        self._alignment: list[tuple[int, float, float]] = []
        self._authors: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        #: The seed of the live projections (the authors' frames use it too).
        self.seed = next((cfg.seed for cfg in self.live_configs.values()), 0)

    # what a subclass provides
    @property
    def run(self) -> Run:
        raise NotImplementedError

    @property
    def iteration(self) -> int:
        raise NotImplementedError

    @property
    def frames(self) -> int:
        """Snapshots projected in every live projection."""
        return min((len(c) for c in self.coords.values()), default=len(self.run.snapshots))

    @property
    def preview_frames(self) -> int:
        """Snapshots with a frame to show: the live one, else the PCA preview."""
        if not self.preview_coords:
            return self.frames
        return max(self.frames, min(len(c) for c in self.preview_coords.values()))

    @property
    def done(self) -> bool:
        return self.run.finished and self.frames >= len(self.run.snapshots)

    def progress(self) -> Progress:
        """Where the run is. `Progress.iteration` is the iteration whose loss
        `Progress.loss` is: between an update and the forward pass that
        measures it the trainer is one ahead, and pairing its count with the
        last loss showed iteration 40 with iteration 39's loss."""
        run = self.run
        loss = run.losses[-1][1] if run.losses else None
        iters = run.config.iters
        it = run.losses[-1][0] if run.losses else 0
        eta = None
        if self._step_seconds is not None:
            waiting = len(run.config.snapshot_iterations()) - self.frames if not run.finished else \
                len(run.snapshots) - self.frames
            eta = (0 if run.finished else (iters - it) * self._step_seconds) + waiting * (self._frame_seconds or 0.5)
        return Progress(it, iters, loss, self.frames, len(run.config.snapshot_iterations()), self.seconds, eta)

    # -- reading (never trains; each result computed once) --
    def _coloured(self, tag: tuple, config: ProjectionConfig, coords: list[np.ndarray]) -> Projection:
        """Frames `coords` in one colour space; recoloured only when a frame is added."""
        n = len(coords)
        with self._read_lock:
            cached = self._colors.get(tag)
            if cached is None or len(cached) != n:
                frames = list(coords[:n])
                grid = self.teacher.grid.shape[:2]
                cached = Projection(config, grid, frames, islands.colorize(frames, grid) if frames else [])
                self._colors[tag] = cached
            return cached

    def live_projection(self, name: str) -> Projection:
        return self._coloured(("live", name), self.live_configs[name], self.coords[name])

    def preview_projection(self, name: str) -> Projection:
        """The PCA preview frames of live projection `name` (one colour space)."""
        return self._coloured(("preview", name), PREVIEW.get(name, ProjectionConfig(method="pca")),
                              self.preview_coords[name])

    def projection(self, config: ProjectionConfig) -> Projection:
        """Any projection of the projected snapshots; computed once per config and frame count."""
        n = self.frames
        with self._read_lock:
            cached = self.extra.get(config)
            if cached is None or len(cached) != n:
                cached = islands.project([s.field for s in self.run.snapshots[:n]], config)
                self.extra[config] = cached
            return cached

    def teacher_projection(self, config: ProjectionConfig) -> Projection:
        """The teacher's own grid, projected alone (one frame)."""
        with self._read_lock:
            if config not in self.teacher_projections:
                self.teacher_projections[config] = islands.project([self.teacher.grid], config)
            return self.teacher_projections[config]

    def island_counts(self, tau: float = DEFAULT_TAU, min_size: int = DEFAULT_MIN_SIZE,
                      frames: Optional[int] = None) -> list[tuple[int, int]]:
        """(iteration, island count) of each shown frame; each frame counted once per (tau, min_size)."""
        n = self.frames if frames is None else frames
        snaps = self.run.snapshots[:n]
        with self._read_lock:
            counts = self._counts.setdefault((float(tau), int(min_size)), [])
            for s in snaps[len(counts):]:
                counts.append(islands.count_islands(s.field, tau, min_size))
            return [(s.iteration, c) for s, c in zip(snaps, counts)]

    def teacher_islands(self, tau: float = DEFAULT_TAU, min_size: int = DEFAULT_MIN_SIZE) -> int:
        with self._read_lock:
            key = ("teacher", float(tau), int(min_size))
            if key not in self._counts:
                self._counts[key] = islands.count_islands(self.teacher.grid, tau, min_size)
            return self._counts[key]

    def alignment(self) -> list[tuple[int, float, float]]:
        """[(iteration, teacher share, position share)] of the shown frames
        (`alignment.alignment`); each snapshot's is computed once."""
        snaps = self.run.snapshots[: self.frames]
        with self._read_lock:
            new = snaps[len(self._alignment):]
            if new:
                self._alignment += alignment_rows([s.iteration for s in new], [s.field for s in new],
                                                  self.teacher.grid)
            return self._alignment[: len(snaps)]

    def authors_frame(self, k: int, dims: int = 3) -> tuple[np.ndarray, np.ndarray]:
        """Snapshot k projected the authors' way (scikit-learn t-SNE on its own,
        `recipes.islands_projection("authors")`; dims 3 or 1 for grayscale):
        (N, dims) coordinates and (h, w, 3) colours, the same as frame k of the
        command line's `--recipe authors`. Seconds per frame; computed once."""
        with self._read_lock:
            if (k, dims) not in self._authors:
                f = self.run.snapshots[k].field
                c = independent_frame(f, k, islands_projection("authors", dims=dims, seed=self.seed))
                self._authors[(k, dims)] = (c, islands.colorize([c], f.shape[:2])[0])
            return self._authors[(k, dims)]


class IslandsFilm(FilmFrames):
    """A TTT run plus progressively built projections of its snapshots.

    live: projections built as snapshots arrive (name -> config); others are
    computed on request by `projection` and kept. preview: also make a PCA
    preview frame of each snapshot (`preview_next`).
    """

    def __init__(self, teacher: TeacherOutput, config: TTTConfig, live: Optional[dict] = None, seed: int = 0,
                 preview: bool = False):
        live = LIVE if live is None else live
        super().__init__(teacher, {name: replace(cfg, seed=seed) for name, cfg in live.items()}, preview)
        self.trainer = Trainer(teacher, config)
        self.live = {name: Projector(cfg) for name, cfg in self.live_configs.items()}
        self.coords = {name: p.coords for name, p in self.live.items()}
        self._preview = {name: Projector(PREVIEW.get(name, ProjectionConfig(method="pca", dims=cfg.dims)))
                         for name, cfg in self.live_configs.items()} if preview else {}
        self.preview_coords = {name: p.coords for name, p in self._preview.items()}

    @property
    def run(self) -> Run:
        return self.trainer.run

    @property
    def iteration(self) -> int:
        return self.trainer.iteration

    def cancel(self) -> None:
        self.trainer.cancel()

    @property
    def preview_waiting(self) -> bool:
        """A snapshot has neither a live frame nor a preview yet."""
        n = len(self.run.snapshots)
        return self.frames < n and any(len(p.coords) < n for p in self._preview.values())

    def preview_next(self) -> bool:
        """Make the PCA preview frames of every snapshot that has none; True if any were made."""
        made = False
        for p in self._preview.values():
            for s in self.run.snapshots[len(p.coords):]:  # (a frame that has its t-SNE already gets one too)
                p.add(s.field)
                made = True
        return made

    def advance(self, budget: float = 0.5, max_iters: Optional[int] = None) -> None:
        """Work for about `budget` seconds: project waiting snapshots, train, repeat.

        Each new snapshot is projected before training goes on, so frames
        appear as early as possible. max_iters caps the TTT iterations of this
        call (a "step" button).
        """
        t0 = time.perf_counter()
        target = None if max_iters is None else self.trainer.iteration + max_iters
        try:
            while time.perf_counter() - t0 < budget:
                if self._preview and self.preview_waiting:
                    break  # a new snapshot: its preview goes out before anything else
                if self.frames < len(self.run.snapshots):
                    self._project_next()
                    continue
                if self.run.finished or (target is not None and self.trainer.iteration >= target):
                    break
                # Steps in chunks of about a quarter second between checks of the clock.
                n = 1 if self._step_seconds is None else max(1, int(0.25 / max(self._step_seconds, 1e-4)))
                if target is not None:
                    n = min(n, target - self.trainer.iteration)
                before = self.trainer.iteration
                s = time.perf_counter()
                self.trainer.step(n)
                self._step_seconds = (time.perf_counter() - s) / max(self.trainer.iteration - before, 1)
        finally:
            self.seconds += time.perf_counter() - t0

    def _project_next(self) -> None:
        k = self.frames
        s = time.perf_counter()
        f = self.run.snapshots[k].field
        shared: dict = {}  # the 2-D and 3-D t-SNE of one frame share one neighbour search
        for p in self.live.values():
            if len(p.coords) == k:
                key = p.affinity_key(f)
                if key is not None and key not in shared:
                    shared[key] = p.affinities(f)
                p.add(f, shared.get(key))
        if k > 0:
            self._frame_seconds = time.perf_counter() - s
