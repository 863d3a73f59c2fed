"""The app's long work as jobs for `apm_viz.worker`: an islands film (also the
Teacher vs APM fit, without live projections) and a memory fit of several
images (Latent interpolation).

Each job has a worker half that trains (`*Work`, in the worker process) and a
server half that pages read (`*View`). Updates carry only what is new: losses,
snapshots, frames, and at the end the model's weights where a page queries
the model (never gradients or Adam's moments).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Hashable, Optional, Sequence

import numpy as np

from .film import LIVE, FilmFrames, IslandsFilm
from .teachers import TeacherOutput
from .ttt import Run, TTTConfig, check_memory

#: Seconds of work per update: short, so controls and the page answer quickly.
STEP_SECONDS = 0.2


def nbytes_of(*objs) -> int:
    """Bytes of the numpy arrays in objs (lists, tuples, dicts and dataclass fields looked into)."""
    seen: set[int] = set()
    total = 0
    stack = list(objs)
    while stack:
        o = stack.pop()
        if id(o) in seen or o is None:
            continue
        seen.add(id(o))
        if isinstance(o, np.ndarray):
            total += o.nbytes
        elif isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, (list, tuple)):
            if o and isinstance(o[0], (int, float)):
                total += 32 * len(o)  # Python numbers: about 32 bytes each with their slot
            else:
                stack.extend(o)
        elif hasattr(o, "__dataclass_fields__"):
            stack.extend(getattr(o, f) for f in o.__dataclass_fields__)
    return total


def model_weights(model) -> dict[str, np.ndarray]:
    """A model's parameters and buffers as numpy arrays (what a page needs to query it)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def load_model(config: TTTConfig, grid: int, feature_dim: int, weights: dict[str, np.ndarray], patch: int):
    """An APM with `weights` (from `model_weights`), in eval mode; `patch`: the teacher's."""
    import torch

    from .ttt import build_apm

    model = build_apm(config, grid, feature_dim, patch)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    return model.eval()


# -- islands films ------------------------------------------------------------------

@dataclass
class FilmJob:
    """One islands film: TTT of `config` on `teacher`, its snapshots projected by `live`.

    key: what decides the result (the page's settings). with_model: send the
    final model's weights (the Teacher vs APM page queries it between grid
    points). preview: PCA preview frames first.
    """

    key: Hashable
    teacher: TeacherOutput
    config: TTTConfig
    seed: int = 0
    live: dict = field(default_factory=lambda: dict(LIVE))
    preview: bool = True
    with_model: bool = False

    def check(self) -> None:
        check_memory(self.config, self.teacher.grid_size, self.teacher.grid.shape[-1], patch=self.teacher.patch)

    def open(self) -> "FilmWork":
        return FilmWork(self)

    def view(self) -> "FilmView":
        return FilmView(self)


class FilmWork:
    """The worker half: an `IslandsFilm` advanced in short slices; each update is what is new."""

    def __init__(self, job: FilmJob):
        self.job = job
        self.film = IslandsFilm(job.teacher, job.config, job.live, seed=job.seed, preview=job.preview)
        self.finished = False
        self.held = False
        self._target: Optional[int] = None
        self._cancel = False
        self._teacher_sent = False
        self._sent = {"losses": 0, "snapshots": 0, "terms": {}, "coords": {}, "preview": {}}

    def control(self, msg) -> None:
        if msg == "cancel":
            self._cancel, self.held = True, False
        elif msg == "hold":
            self.held = True
        elif msg == "resume":
            self._target, self.held = None, False
        elif isinstance(msg, tuple) and msg[0] == "step":
            self._target, self.held = self.film.iteration + int(msg[1]), False

    def step(self) -> dict:
        film = self.film
        if self._cancel:
            film.cancel()
            film.trainer.step(1)  # records the status; no more frames
            self.finished = True
            return self._update()
        if film.done:  # every frame is out: the teacher's own islands last, so they hold back no frame
            teacher = None
            if "3d" in film.live_configs and not self._teacher_sent:
                self._teacher_sent = True
                teacher = film.teacher_projection(film.live_configs["3d"])
            self.finished = True
            return self._update(teacher=teacher)
        if film.preview_next():  # a frame on screen at once
            return self._update()
        left = None if self._target is None else max(self._target - film.iteration, 0)
        film.advance(budget=STEP_SECONDS, max_iters=left)
        film.preview_next()  # a new snapshot goes out with its preview: one update, one redraw
        if not film.done and left is not None and film.iteration >= self._target \
                and film.frames >= len(film.run.snapshots):
            self.held = True  # a Step is over: wait for the next control message
        return self._update()

    def _new(self, name: str, seq: list, sub: Optional[str] = None) -> list:
        sent = self._sent[name] if sub is None else self._sent[name].get(sub, 0)
        out = list(seq[sent:])
        if sub is None:
            self._sent[name] = len(seq)
        else:
            self._sent[name][sub] = len(seq)
        return out

    def _update(self, teacher=None) -> dict:
        film, run = self.film, self.film.run
        update = {
            "losses": self._new("losses", run.losses),
            "terms": {k: self._new("terms", v, k) for k, v in run.terms.items()},
            "snapshots": self._new("snapshots", run.snapshots),
            "coords": {k: self._new("coords", v, k) for k, v in film.coords.items()},
            "preview": {k: self._new("preview", v, k) for k, v in film.preview_coords.items()},
            "iteration": film.iteration, "status": run.status, "message": run.message,
            "run_seconds": run.seconds, "seconds": film.seconds,
            "step_seconds": film._step_seconds, "frame_seconds": film._frame_seconds,
        }
        if teacher is not None:
            update["teacher"] = teacher
        if self.finished and self.job.with_model:
            update["model"] = model_weights(film.trainer.model)
        return update


class FilmView(FilmFrames):
    """The server half: what pages read, filled by `FilmWork`'s updates.

    Holds the teacher output, the run (losses, snapshots) and the frames;
    `model()` rebuilds the final APM when the job sent its weights.
    """

    def __init__(self, job: FilmJob):
        super().__init__(job.teacher, {name: replace(cfg, seed=job.seed) for name, cfg in job.live.items()},
                         job.preview)
        t = job.teacher
        self.key = job.key
        self._run = Run(config=job.config, grid=t.grid_size, teacher_model=t.model, weights=t.weights,
                        terms={k: [] for k in job.config.terms()})
        self._iteration = 0
        self.weights: Optional[dict[str, np.ndarray]] = None
        self._model = None
        self._model_lock = threading.Lock()

    @property
    def run(self) -> Run:
        return self._run

    @property
    def iteration(self) -> int:
        return self._iteration

    @property
    def complete(self) -> bool:
        return self.run.status == "done" and self.done

    def apply(self, u: dict) -> None:
        run = self._run
        with self._read_lock:
            run.losses.extend(u["losses"])
            for k, v in u["terms"].items():
                run.terms.setdefault(k, []).extend(v)
            run.snapshots.extend(u["snapshots"])
            for k, v in u["preview"].items():
                self.preview_coords[k].extend(v)
            for k, v in u["coords"].items():
                self.coords[k].extend(v)
            run.status, run.message, run.seconds = u["status"], u["message"], u["run_seconds"]
            self._iteration, self.seconds = u["iteration"], u["seconds"]
            self._step_seconds, self._frame_seconds = u["step_seconds"], u["frame_seconds"]
            if "teacher" in u:
                self.teacher_projections[u["teacher"].config] = u["teacher"]
            if "model" in u:
                self.weights = u["model"]

    def model(self):
        """The APM as the run left it (None unless the job sent its weights)."""
        if self.weights is None:
            return None
        with self._model_lock:
            if self._model is None:
                self._model = load_model(self.run.config, self.run.grid, self.teacher.grid.shape[-1], self.weights,
                                         self.teacher.patch)
            return self._model

    @property
    def nbytes(self) -> int:
        return nbytes_of(self.teacher, self.run.losses, self.run.terms, self.run.snapshots, self.coords,
                         self.preview_coords, self.weights, list(self._colors.values()), list(self.extra.values()),
                         list(self.teacher_projections.values()))


# -- memory fits (Latent interpolation) -----------------------------------------------

@dataclass
class MemoryJob:
    """One APM fitted on several images at once (`interpolate.MemoryTrainer`)."""

    key: Hashable
    teachers: Sequence[TeacherOutput]
    config: TTTConfig
    names: Sequence[str]

    def check(self) -> None:
        t = self.teachers[0]
        check_memory(self.config, t.grid_size, t.grid.shape[-1], images=len(self.teachers), patch=t.patch)

    def open(self) -> "MemoryWork":
        return MemoryWork(self)

    def view(self) -> "MemoryView":
        return MemoryView(self)


class MemoryWork:
    def __init__(self, job: MemoryJob):
        from .interpolate import MemoryTrainer

        self.job = job
        self.trainer = MemoryTrainer(job.teachers, job.config, job.names)
        self.finished = False
        self.held = False
        self._sent = 0
        self._sent_terms: dict[str, int] = {}
        self._step_seconds: Optional[float] = None

    def control(self, msg) -> None:
        if msg == "cancel":
            self.trainer.cancel()
            self.held = False
        elif msg == "hold":
            self.held = True
        elif msg == "resume":
            self.held = False

    def step(self) -> dict:
        import time

        t0 = time.perf_counter()
        trainer = self.trainer
        while not trainer.run.finished and time.perf_counter() - t0 < STEP_SECONDS:
            trainer.step(5)
        if trainer.run.finished:
            self.finished = True
        run = trainer.run
        update = {"losses": run.losses[self._sent:], "iteration": trainer.iteration, "status": run.status,
                  "message": run.message, "seconds": run.seconds,
                  "terms": {k: v[self._sent_terms.get(k, 0):] for k, v in run.terms.items()}}
        self._sent = len(run.losses)
        self._sent_terms = {k: len(v) for k, v in run.terms.items()}
        if self.finished and run.status != "diverged":
            m = trainer.memory()
            update["model"] = model_weights(m.model)
            update["columns"] = m.columns
        return update


class MemoryView:
    """The server half of a memory fit: its loss history, then its `Memory`."""

    def __init__(self, job: MemoryJob):
        t0 = job.teachers[0]
        g = t0.grid_size
        self.key = job.key
        self.names = list(job.names)
        self.run = Run(config=job.config, grid=g, teacher_model=t0.model, weights=t0.weights,
                       terms={k: [] for k in job.config.terms()})
        self.iteration = 0
        self.target_grid = np.stack([t.grid for t in job.teachers])
        self.target_rgb = np.stack([t.pooled_rgb for t in job.teachers])
        self.images = np.stack([t.image for t in job.teachers]).astype(np.float32)
        self.patch = t0.patch
        self.weights: Optional[dict] = None
        self.columns: Optional[np.ndarray] = None
        self._memory = None
        self._lock = threading.Lock()

    @property
    def fraction(self) -> float:
        return min(self.iteration / max(self.run.config.iters, 1), 1.0)

    @property
    def complete(self) -> bool:
        return self.run.status == "done" and self.weights is not None

    def apply(self, u: dict) -> None:
        with self._lock:
            self.run.losses.extend(u["losses"])
            for k, v in u["terms"].items():
                self.run.terms.setdefault(k, []).extend(v)
            self.iteration = u["iteration"]
            self.run.status, self.run.message, self.run.seconds = u["status"], u["message"], u["seconds"]
            if "model" in u:
                self.weights, self.columns = u["model"], u["columns"]

    def memory(self):
        """The fitted `interpolate.Memory` (raises ApmVizError for a diverged fit)."""
        from .errors import ApmVizError
        from .interpolate import Memory

        if self.run.status == "diverged":
            raise ApmVizError(self.run.message)
        if self.weights is None:
            raise ApmVizError("the fit has not finished")
        with self._lock:
            if self._memory is None:
                model = load_model(self.run.config, self.run.grid, self.target_grid.shape[-1], self.weights,
                                   self.patch)
                self._memory = Memory(model=model, columns=self.columns, target_grid=self.target_grid,
                                      target_rgb=self.target_rgb, images=self.images, names=self.names,
                                      run=self.run)
            return self._memory

    @property
    def nbytes(self) -> int:
        return nbytes_of(self.run.losses, self.run.terms, self.target_grid, self.target_rgb, self.images,
                         self.weights, self.columns)


def warm_up() -> None:
    """A tiny film (2x2 grid, random arrays) up to its first PCA preview, so a
    fresh process's first real film starts at once: its build and first step
    took 4.2 s in a fresh worker process on 2 busy cores, 0.6 s after this."""
    from .teachers import Normalisation
    from .ttt import recommended
    from .weights import WeightsSource

    rng = np.random.default_rng(0)
    g, patch, dim = 2, 14, 8
    teacher = TeacherOutput(image=rng.random((g * patch, g * patch, 3), dtype=np.float32),
                            grid=rng.standard_normal((g, g, dim), dtype=np.float32),
                            token=rng.standard_normal(dim, dtype=np.float32),
                            pooled_rgb=rng.random((g, g, 3), dtype=np.float32), model="warm-up",
                            weights=WeightsSource("random", "warm-up"), patch=patch,
                            normalisation=Normalisation((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
    work = film_job("warm-up", teacher, recommended("token", preset="laptop", iters=2)).open()
    while not any(work.film.preview_coords.values()):
        work.step()


def film_job(key: Hashable, teacher: TeacherOutput, config: TTTConfig, seed: int = 0,
             live: Optional[dict] = None, with_model: bool = False) -> FilmJob:
    """A FilmJob; live={} for a fit without projections (Teacher vs APM)."""
    return FilmJob(key, teacher, config, seed, dict(LIVE) if live is None else live, preview=bool(
        LIVE if live is None else live), with_model=with_model)
