"""The islands film: a TTT run whose snapshots are projected as they arrive.

An `IslandsFilm` is advanced in small time slices (a face calls `advance`
from a timer), so training can be paused, stepped, resumed or cancelled and
each frame can be shown as soon as it exists. Scrubbing reads frames; it
never computes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Optional


from .islands import (DEFAULT_MIN_SIZE, DEFAULT_TAU, Projection, ProjectionConfig, Projector, count_islands,
                      project)
from .teachers import TeacherOutput
from .ttt import Run, Trainer, TTTConfig

#: The projections a film computes while it trains.
LIVE = {"3d": ProjectionConfig(dims=3), "2d": ProjectionConfig(dims=2)}


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


class IslandsFilm:
    """A TTT run plus progressively built projections of its snapshots.

    live: projections built as snapshots arrive (name -> config); others are
    computed on request by `projection` and kept.
    """

    def __init__(self, teacher: TeacherOutput, config: TTTConfig, live: Optional[dict] = None, seed: int = 0):
        self.teacher = teacher
        self.trainer = Trainer(teacher, config)
        live = LIVE if live is None else live
        self.live = {name: Projector(replace(cfg, seed=seed)) for name, cfg in live.items()}
        self.extra: dict[ProjectionConfig, Projection] = {}
        self.teacher_projections: dict[ProjectionConfig, Projection] = {}
        self.seconds = 0.0
        self._step_seconds: Optional[float] = None
        self._frame_seconds: Optional[float] = None

    @property
    def run(self) -> Run:
        return self.trainer.run

    @property
    def frames(self) -> int:
        """Snapshots projected in every live projection."""
        return min((len(p.coords) for p in self.live.values()), default=len(self.run.snapshots))

    @property
    def done(self) -> bool:
        return self.run.finished and self.frames >= len(self.run.snapshots)

    def cancel(self) -> None:
        self.trainer.cancel()

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

    def progress(self) -> Progress:
        run = self.run
        loss = run.losses[-1][1] if run.losses else None
        iters = run.config.iters
        it = self.trainer.iteration
        eta = None
        if self._step_seconds is not None:
            waiting = len(run.config.snapshot_iterations()) - self.frames if not run.finished else \
                len(run.snapshots) - self.frames
            eta = (0 if run.finished else (iters - it) * self._step_seconds) + waiting * (self._frame_seconds or 0.5)
        return Progress(it, iters, loss, self.frames, len(run.config.snapshot_iterations()), self.seconds, eta)

    # -- reading (never trains) --
    def live_projection(self, name: str) -> Projection:
        return self.live[name].result()

    def projection(self, config: ProjectionConfig) -> Projection:
        """Any projection of the projected snapshots; computed once per config."""
        n = self.frames
        cached = self.extra.get(config)
        if cached is None or len(cached) != n:
            cached = project([s.field for s in self.run.snapshots[:n]], config)
            self.extra[config] = cached
        return cached

    def teacher_projection(self, config: ProjectionConfig) -> Projection:
        """The teacher's own grid, projected alone (one frame)."""
        if config not in self.teacher_projections:
            self.teacher_projections[config] = project([self.teacher.grid], config)
        return self.teacher_projections[config]

    def island_counts(self, tau: float = DEFAULT_TAU, min_size: int = DEFAULT_MIN_SIZE) -> list[tuple[int, int]]:
        return [(s.iteration, count_islands(s.field, tau, min_size)) for s in self.run.snapshots[: self.frames]]

    def teacher_islands(self, tau: float = DEFAULT_TAU, min_size: int = DEFAULT_MIN_SIZE) -> int:
        return count_islands(self.teacher.grid, tau, min_size)
