"""Latent interpolation: walk between two images' trigger columns.

The trigger column T is the key that retrieves an image from the APM's
memory. One APM is fitted on a small set of images at once (grid + rgb
losses), so it holds each image's field and colours. Then, for two of them,

    v_i = v1 + (v2 - v1) * i / n

is unfolded through the same MLP for every i; the RGB field of v_i is one
frame of the walk. i = 0 and i = n are the fitted images themselves; i < 0 or
i > n extrapolates a little past them. A random trigger column, drawn with
the statistics of the fitted ones, is a "dream".

Shapes (B fitted images, h x w grid, N = h*w, D teacher width, K codes):
    trigger columns  (B, N)      one per fitted image
    codes            (K, N)      the walk's trigger columns
    fields           (K, h, w, D)
    rgb              (K, h, w, 3) in [0, 1]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from .errors import ApmVizError
from .islands import Projection, ProjectionConfig, island_history, project
from .model import APM, grid_coords
from .teachers import TeacherOutput
from .ttt import Run, Trainer, TTTConfig, drive, recommended

#: Default number of Adam updates of a memory fit. Measured on chelsea + coffee
#: at 16x16, laptop preset, random ViT-S/14 teacher: 300 updates take about 6 s
#: of one CPU core; each end frame's RGB MSE is then about 1e-4 against about
#: 0.07 to the other image, and its field keeps over 90 % of the teacher's variance.
DEFAULT_ITERS = 300
#: Terms a memory is fitted with: the field (so islands mean something) and the
#: colours (so a frame is a picture).
MEMORY_LOSS = "grid+rgb"


def memory_config(**overrides) -> TTTConfig:
    """The TTT settings for a memory fit: grid + rgb with the grid defaults
    (`ttt.GRID_DEFAULTS`), DEFAULT_ITERS iterations, no snapshots. Its query is
    [T | p_xy], without the islands experiment's I_xy: a memory decodes mixed or
    dreamt trigger columns, which have no pixels of their own to read."""
    overrides.setdefault("iters", DEFAULT_ITERS)
    overrides.setdefault("snapshots", ())
    return recommended(MEMORY_LOSS, **overrides)


# -- fitting one APM on several images -----------------------------------------

@dataclass
class Memory:
    """One APM that has learned several images.

    columns: (B, N) the fitted images' trigger columns, folded by the final model.
    target_grid: (B, h, w, D) the teacher's patch tokens per image.
    target_rgb: (B, h, w, 3) each image pooled to the grid.
    images: (B, S, S, 3) the square inputs the teacher saw.
    names: one display name per image.
    run: the loss history (a `ttt.Run` without snapshots).
    """

    model: APM
    columns: np.ndarray
    target_grid: np.ndarray
    target_rgb: np.ndarray
    images: np.ndarray
    names: list[str]
    run: Run

    @property
    def grid(self) -> tuple[int, int]:
        return tuple(self.target_grid.shape[1:3])

    def __len__(self) -> int:
        return self.columns.shape[0]

    def index(self, key) -> int:
        """An image's position from its index or name."""
        if isinstance(key, (int, np.integer)):
            if not 0 <= key < len(self):
                raise ApmVizError(f"image {key} is not in this memory (it holds {len(self)})")
            return int(key)
        if key not in self.names:
            raise ApmVizError(f"{key!r} is not in this memory; it holds {', '.join(self.names)}")
        return self.names.index(key)


class MemoryTrainer(Trainer):
    """Fits one fresh APM on several images at once, step by step.

    A `ttt.Trainer` whose batch holds every image (its setup, memory check
    for the whole batch included): the same conventions (a
    fresh seeded init and a fresh Adam per fit, gradients zeroed every step,
    `run.losses[i]` is the loss of the model after i updates, divergence
    stops the fit with a message, `cancel` stops it at the next step and keeps
    what was learned). Losses are means over all images.

    Usage: t = MemoryTrainer(outs, cfg); while not t.run.finished: t.step(10); m = t.memory()
    """

    def __init__(self, teachers: Sequence[TeacherOutput], config: Optional[TTTConfig] = None,
                 names: Optional[Sequence[str]] = None):
        config = config or memory_config()
        if len(teachers) < 2:
            raise ApmVizError("a memory needs at least two images to interpolate between")
        if len({(t.grid.shape, t.patch, t.normalisation) for t in teachers}) != 1:
            raise ApmVizError("all images of a memory need the same grid and teacher")
        names = list(names) if names is not None else [f"image {k}" for k in range(len(teachers))]
        if len(names) != len(teachers):
            raise ApmVizError("one name per image")
        super().__init__(teachers, config)
        self.names = names
        self.images_np = np.stack([t.image for t in teachers]).astype(np.float32)
        # No snapshots: the walk decodes the final model.
        self.want = set()

    @property
    def fraction(self) -> float:
        return min(self.iteration / max(self.config.iters, 1), 1.0)

    def memory(self) -> Memory:
        """The model as it is now (finished or not), with its trigger columns.

        A diverged fit has no usable memory.
        """
        if self.run.status == "diverged":
            raise ApmVizError(self.run.message)
        g = self.run.grid
        with torch.no_grad():
            columns = self.model.fold(self.image).float().cpu().numpy()
        return Memory(model=self.model, columns=columns,
                      target_grid=self.target_grid.reshape(len(self.names), g, g, -1).cpu().numpy(),
                      target_rgb=self.target_rgb.reshape(len(self.names), g, g, 3).cpu().numpy(),
                      images=self.images_np, names=list(self.names), run=self.run)


def fit_memory(teachers: Sequence[TeacherOutput], config: Optional[TTTConfig] = None,
               names: Optional[Sequence[str]] = None, progress: Optional[Callable[[Run], None]] = None,
               should_stop: Optional[Callable[[], bool]] = None, chunk: int = 10) -> Memory:
    """Fit one APM on all `teachers`' images to the end (or until
    `should_stop()`); `progress(run)` after each chunk. Raises ApmVizError
    if the fit diverged."""
    trainer = MemoryTrainer(teachers, config, names)
    drive(trainer, progress, should_stop, chunk)
    return trainer.memory()


# -- codes --------------------------------------------------------------------

def interpolation_steps(n: int, start: bool = True, end: bool = True, extrapolate: int = 0) -> np.ndarray:
    """The steps i of a walk: 0..n, without 0 or n if not wanted, plus
    `extrapolate` steps past each end (-extrapolate..-1 and n+1..n+extrapolate)."""
    if n < 1:
        raise ApmVizError("the walk needs at least one step (n >= 1)")
    if extrapolate < 0:
        raise ApmVizError("extrapolation is a number of steps past each end (>= 0)")
    steps = [i for i in range(-extrapolate, n + extrapolate + 1)
             if (i != 0 or start) and (i != n or end)]
    if not steps:
        raise ApmVizError("the walk is empty: include an end point or take more steps")
    return np.asarray(steps, dtype=np.int64)


def interpolate_codes(v1: np.ndarray, v2: np.ndarray, n: int, start: bool = True, end: bool = True,
                      extrapolate: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """v_i = v1 + (v2 - v1) * i / n for the steps of `interpolation_steps`.

    v1, v2: (N,) trigger columns. Returns steps (K,) int and codes (K, N) float32.
    """
    v1 = np.asarray(v1, dtype=np.float64)
    v2 = np.asarray(v2, dtype=np.float64)
    if v1.shape != v2.shape or v1.ndim != 1:
        raise ApmVizError("the two trigger columns must be vectors of one length")
    steps = interpolation_steps(n, start, end, extrapolate)
    t = steps[:, None] / n
    return steps, (v1 + (v2 - v1) * t).astype(np.float32)


def dream_codes(columns: np.ndarray, count: int = 1, seed: int = 0, temperature: float = 1.0) -> np.ndarray:
    """Random trigger columns drawn with the statistics of the fitted ones.

    Each entry j of a trigger column is the fold of patch j, so entry j is
    drawn from N(mean_j, (temperature * std_j)^2) over the fitted columns:
    a dream stays where the memory has seen keys, location by location.
    columns: (B, N). Returns (count, N) float32.
    """
    columns = np.asarray(columns, dtype=np.float64)
    if columns.ndim != 2 or columns.shape[0] < 1:
        raise ApmVizError("dreaming needs the fitted trigger columns (B, N)")
    if count < 1:
        raise ApmVizError("dream at least one trigger column")
    mean, std = columns.mean(axis=0), columns.std(axis=0)
    z = np.random.default_rng(seed).standard_normal((count, columns.shape[1]))
    return (mean + temperature * std * z).astype(np.float32)


# -- decoding -------------------------------------------------------------------

@torch.no_grad()
def decode(model: APM, codes: np.ndarray, batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Unfold trigger columns on the model's grid.

    codes: (K, N). Returns fields (K, h, w, D) and rgb (K, h, w, 3), float32.
    """
    h, w = model.grid
    codes = np.asarray(codes, dtype=np.float32)
    if codes.ndim != 2 or codes.shape[1] != h * w:
        raise ApmVizError(f"trigger columns must be (K, {h * w}) for this APM, got {codes.shape}")
    if model.config.local_patch:
        raise ApmVizError("an APM that reads local patches cannot decode a trigger column alone")
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    fields, rgbs = [], []
    for s in range(0, len(codes), batch):
        T = torch.from_numpy(codes[s : s + batch]).to(dev)
        f, c = model.unfold(T)
        fields.append(f.reshape(len(T), h, w, -1).float().cpu().numpy())
        rgbs.append(c.reshape(len(T), h, w, 3).float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(fields), np.concatenate(rgbs)


@torch.no_grad()
def decode_rgb(model: APM, codes: np.ndarray, scale: float = 2.0, batch: int = 8,
               chunk: int = 4096) -> np.ndarray:
    """RGB frames at (h*scale, w*scale), querying the field between grid points.

    Every location is an independent query, so a model fitted at h x w can be
    asked at any finer set of coordinates. codes: (K, N). Returns (K, H, W, 3).
    """
    h, w = model.grid
    codes = np.asarray(codes, dtype=np.float32)
    if scale <= 0:
        raise ApmVizError("the scale must be positive")
    coords = grid_coords(h, w, scale)
    hs, ws = int(round(h * scale)), int(round(w * scale))
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    out = []
    for s in range(0, len(codes), batch):
        T = torch.from_numpy(codes[s : s + batch]).to(dev)
        _, c = model.field(T, coords, chunk=chunk)
        out.append(c.reshape(len(T), hs, ws, 3).float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(out)


# -- the walk ---------------------------------------------------------------------

def smoothness(frames: np.ndarray, first: Optional[np.ndarray] = None, last: Optional[np.ndarray] = None) -> float:
    """Largest step between consecutive frames against the distance between the ends.

    frames: (K, ...) in walk order. first, last: the end frames (i = 0 and
    i = n; default frames[0] and frames[-1]). Distances are Euclidean over all
    values of a frame. A walk of n even steps between its ends gives 1/n; a
    jump (a collapse onto one image, then a switch) gives up to 1.
    """
    frames = np.asarray(frames, dtype=np.float64)
    if len(frames) < 2:
        raise ApmVizError("smoothness needs at least two frames")
    a = frames[0] if first is None else np.asarray(first, dtype=np.float64)
    b = frames[-1] if last is None else np.asarray(last, dtype=np.float64)
    span = float(np.linalg.norm((b - a).ravel()))
    if span == 0.0:
        raise ApmVizError("the two ends decode to the same frame; there is nothing to walk")
    steps = np.linalg.norm(np.diff(frames, axis=0).reshape(len(frames) - 1, -1), axis=1)
    return float(steps.max() / span)


@dataclass
class Walk:
    """A decoded walk between two fitted images a and b.

    steps: (K,) the i of each frame; t = i / n (0 at a, 1 at b).
    codes: (K, N); fields: (K, h, w, D); rgb: (K, h, w, 3).
    end_fields, end_rgb: (2, ...) the decoded ends (i = 0 and i = n), kept
        even when the walk leaves them out, for the smoothness number.
    """

    a: int
    b: int
    n: int
    steps: np.ndarray
    codes: np.ndarray
    fields: np.ndarray
    rgb: np.ndarray
    end_fields: np.ndarray
    end_rgb: np.ndarray

    @property
    def t(self) -> np.ndarray:
        return self.steps / self.n

    def __len__(self) -> int:
        return len(self.steps)

    def labels(self) -> list[str]:
        """One short label per frame: 'i = 3/8', with the ends marked."""
        out = []
        for i in self.steps:
            tag = " (A)" if i == 0 else " (B)" if i == self.n else " (extrapolated)" if i < 0 or i > self.n else ""
            out.append(f"i = {i}/{self.n}{tag}")
        return out

    def smoothness(self, of: str = "rgb") -> float:
        """`smoothness` of the RGB frames ("rgb") or the feature fields ("field")
        between i = 0 and i = n; extrapolated frames count as steps too."""
        frames, ends = (self.rgb, self.end_rgb) if of == "rgb" else (self.fields, self.end_fields)
        return smoothness(frames, ends[0], ends[1])


def walk(memory: Memory, a=0, b=1, n: int = 8, start: bool = True, end: bool = True,
         extrapolate: int = 0) -> Walk:
    """Interpolate between fitted images a and b (index or name) and decode every code."""
    ia, ib = memory.index(a), memory.index(b)
    if ia == ib:
        raise ApmVizError("choose two different images to walk between")
    v1, v2 = memory.columns[ia], memory.columns[ib]
    steps, codes = interpolate_codes(v1, v2, n, start, end, extrapolate)
    fields, rgb = decode(memory.model, codes)
    end_fields, end_rgb = decode(memory.model, np.stack([v1, v2]))
    return Walk(ia, ib, n, steps, codes, fields, rgb, end_fields, end_rgb)


def dream(memory: Memory, count: int = 1, seed: int = 0, temperature: float = 1.0, scale: float = 1.0) -> np.ndarray:
    """Unfold random trigger columns (`dream_codes`) into RGB frames
    (count, h * scale, w * scale, 3) in [0, 1]; scale > 1 queries the field
    between grid points (`decode_rgb`)."""
    codes = dream_codes(memory.columns, count, seed, temperature)
    return decode(memory.model, codes)[1] if scale == 1 else decode_rgb(memory.model, codes, scale=scale)


def end_errors(memory: Memory, index) -> dict[str, float]:
    """How well the decoded trigger column of fitted image `index` reproduces it.

    field_rel: MSE of the decoded field against the teacher's patch tokens,
        over the tokens' variance (0 = exact, 1 = no better than their mean).
    rgb_mse: MSE of the decoded RGB field against the image pooled to the grid.
    field_rel_other, rgb_mse_other: the same against the closest other fitted
        image; a matching end frame is far closer to its own image than to
        the others.
    """
    k = memory.index(index)
    f, c = decode(memory.model, memory.columns[k : k + 1])

    def field_rel(j: int) -> float:
        target = memory.target_grid[j]
        return float(((f[0] - target) ** 2).mean() / max(target.var(), 1e-12))

    def rgb_mse(j: int) -> float:
        return float(((c[0] - memory.target_rgb[j]) ** 2).mean())

    others = [j for j in range(len(memory)) if j != k]
    return {"field_rel": field_rel(k), "rgb_mse": rgb_mse(k),
            "field_rel_other": min(field_rel(j) for j in others), "rgb_mse_other": min(rgb_mse(j) for j in others)}


def walk_islands(fields: Sequence[np.ndarray], method: str = "pca", dims: int = 3, seed: int = 0) -> Projection:
    """Islands of every field of a walk in ONE colour space.

    PCA is fitted on all frames together; t-SNE starts each frame from the
    previous one (see `islands.project`). fields: K x (h, w, D).
    """
    if method == "pca":
        cfg = ProjectionConfig(method="pca", dims=dims, seed=seed)
    elif method == "tsne":
        cfg = ProjectionConfig(method="tsne", dims=dims, seed=seed)
    else:
        raise ApmVizError(f"unknown projection {method!r}; use pca or tsne")
    return project(list(fields), cfg)


def walk_island_counts(fields: Sequence[np.ndarray], **kwargs) -> list[int]:
    """Island count of each field of a walk (see `islands.count_islands`)."""
    return island_history(list(fields), **kwargs)
