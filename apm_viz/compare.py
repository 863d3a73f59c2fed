"""Teacher vs APM: how closely the asynchronous field reproduces the teacher's grid.

The paper's Fig. 5(ii): input | teacher grid | APM grid | error map. Here

- both grids are coloured by ONE projection fitted on the teacher's and the
  APM's vectors together (joint centring, joint PCA, joint min-max), so equal
  colours mean equal features, on either side;
- the error map is, per location, the L1 distance summed over channels (the
  paper's; min-max scaled when drawn) or the cosine distance;
- the APM, a continuous field, is queried between the teacher's locations
  (2x, 4x the grid) and coloured with the same projection.

Shapes: h x w grid, N = h*w locations, D teacher channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ApmVizError
from .model import APM, grid_coords
from .teachers import TeacherOutput
from .ttt import Run, TTTConfig, recommended

Metric = Literal["l1", "cosine"]
METRICS: dict[str, str] = {"l1": "L1 (sum over channels)", "cosine": "cosine distance"}

#: Locations whose error is under this count as reproduced: relative L1 for
#: "l1" (a fifth of the teacher vector's own L1 norm), 1 - cos for "cosine".
DEFAULT_THRESHOLD = {"l1": 0.2, "cosine": 0.05}

#: Iterations of a teacher-vs-APM run: with `converging_config`, about 13 s on
#: 2 CPU cores at 32x32 (laptop preset).
DEFAULT_ITERS = 500


# -- settings ---------------------------------------------------------------------

def converging_config(loss: str = "grid", **overrides) -> TTTConfig:
    """Settings under which the field visibly fits the teacher's grid on a CPU.

    `ttt.GRID_DEFAULTS` (lr 1e-3, frequencies up to 2.8 rad per grid step, under Nyquist) plus
    the local patch I_xy in each query (the paper's figure, T_xy = [T | I_xy |
    p_xy]): a teacher's patch token is mostly a function of its own pixels, so
    reading them cuts the error at equal steps. Measured with a random ViT-S/14
    at 32x32, laptop preset, 2 CPU cores, mean relative L1 error (1.0 at
    iteration 0): chelsea.jpg 0.21 after 250 steps (grid defaults without the
    patch 0.30, the paper's settings 0.63), 0.15 after 500 (13 s), 0.11 after
    1000 (26 s); the four samples after 500: 0.08 to 0.15.
    """
    if "grid" not in loss:
        raise ApmVizError(f"teacher vs APM needs the grid supervised; got loss {loss!r}")
    base = dict(local_patch=True, iters=DEFAULT_ITERS)
    base.update({k: v for k, v in overrides.items() if v is not None})
    return recommended(loss, **base)


def paper_config(loss: str = "grid", **overrides) -> TTTConfig:
    """The paper's settings: Adam 1e-4, its positional code, no local patch, 250 steps."""
    if "grid" not in loss:
        raise ApmVizError(f"teacher vs APM needs the grid supervised; got loss {loss!r}")
    base = dict(iters=250)
    base.update({k: v for k, v in overrides.items() if v is not None})
    return TTTConfig(loss=loss, **base)


# -- error maps -------------------------------------------------------------------

def _check(apm: np.ndarray, teacher: np.ndarray) -> None:
    if apm.shape != teacher.shape or apm.ndim != 3:
        raise ApmVizError(f"APM field {apm.shape} and teacher grid {teacher.shape} must both be (h, w, D)")


def error_map(apm: np.ndarray, teacher: np.ndarray, metric: Metric = "l1") -> np.ndarray:
    """Per-location error of an APM field against the teacher's grid.

    apm, teacher: (h, w, D). Returns (h, w) float32:
    "l1": sum over channels of |apm - teacher| (the paper's error map, in
        feature units); "cosine": 1 - cos(apm, teacher), in [0, 2].
    """
    _check(apm, teacher)
    a, t = apm.astype(np.float64), teacher.astype(np.float64)
    if metric == "l1":
        return np.abs(a - t).sum(-1).astype(np.float32)
    if metric == "cosine":
        na, nt = np.linalg.norm(a, axis=-1), np.linalg.norm(t, axis=-1)
        cos = (a * t).sum(-1) / np.maximum(na * nt, 1e-12)
        return (1.0 - cos).astype(np.float32)
    raise ApmVizError(f"unknown error metric {metric!r}; choose one of {', '.join(METRICS)}")


def relative_error(apm: np.ndarray, teacher: np.ndarray) -> np.ndarray:
    """(h, w): L1 error over the teacher vector's own L1 norm. A field of zeros scores 1."""
    _check(apm, teacher)
    norm = np.abs(teacher.astype(np.float64)).sum(-1)
    return (error_map(apm, teacher, "l1") / np.maximum(norm, 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class ErrorStats:
    """Numbers for one error map.

    mean, max: of the map, in its metric's units.
    relative: mean relative L1 error (see `relative_error`).
    share_under: fraction of locations whose error is under `threshold`
        (relative L1 for "l1", the distance itself for "cosine").
    """

    metric: str
    mean: float
    max: float
    relative: float
    threshold: float
    share_under: float


def error_stats(apm: np.ndarray, teacher: np.ndarray, metric: Metric = "l1",
                threshold: Optional[float] = None) -> ErrorStats:
    threshold = DEFAULT_THRESHOLD[metric] if threshold is None else float(threshold)
    err = error_map(apm, teacher, metric)
    rel = relative_error(apm, teacher)
    judged = rel if metric == "l1" else err
    return ErrorStats(metric, float(err.mean()), float(err.max()), float(rel.mean()), threshold,
                      float((judged < threshold).mean()))


def error_curve(run: Run, teacher: TeacherOutput, metric: Metric = "l1", relative: bool = True,
                upto: Optional[int] = None) -> list[tuple[int, float]]:
    """Mean error at each snapshot: [(iteration, mean)]; relative L1 when `relative` and metric is "l1"."""
    out = []
    for s in run.snapshots[:upto]:
        e = relative_error(s.field, teacher.grid) if (relative and metric == "l1") else \
            error_map(s.field, teacher.grid, metric)
        out.append((s.iteration, float(e.mean())))
    return out


# -- one colour space for both ---------------------------------------------------

class JointProjection:
    """One PCA fitted on the teacher's and the APM's vectors together.

    Both sets are centred by their joint mean (not each by its own) and the
    colour range is fixed by the pair, so a location coloured the same in the
    teacher grid and in the APM grid has (nearly) the same feature vector, and
    any further field of the same APM (e.g. queried at 4x) reuses the range.
    """

    def __init__(self, teacher: np.ndarray, apm: np.ndarray, dims: int = 3, seed: int = 0):
        """teacher, apm: (h, w, D) (or any (..., D) of the same D)."""
        from sklearn.decomposition import PCA

        if teacher.shape[-1] != apm.shape[-1]:
            raise ApmVizError("teacher and APM fields must have the same number of channels")
        t = teacher.reshape(-1, teacher.shape[-1]).astype(np.float64)
        a = apm.reshape(-1, apm.shape[-1]).astype(np.float64)
        joint = np.concatenate([t, a])
        self.mean = joint.mean(axis=0)
        k = min(dims, joint.shape[0], joint.shape[1])
        self.pca = PCA(n_components=k, random_state=seed).fit(joint - self.mean)
        self.dims = dims
        tc = self._coords(t)
        # A PCA axis has no sign of its own: point each so the teacher's skew is
        # positive, so the teacher keeps its colours from one iteration to the next.
        self.signs = np.where(((tc - tc.mean(0)) ** 3).sum(0) < 0, -1.0, 1.0)
        both = np.concatenate([tc, self._coords(a)]) * self.signs
        self.lo, self.hi = float(both.min()), float(both.max())

    def _coords(self, x: np.ndarray) -> np.ndarray:
        c = self.pca.transform(x - self.mean)
        return np.pad(c, ((0, 0), (0, self.dims - c.shape[1]))) if c.shape[1] < self.dims else c

    def coords(self, f: np.ndarray) -> np.ndarray:
        """(..., D) -> (N, dims) coordinates in the joint space."""
        return self._coords(f.reshape(-1, f.shape[-1]).astype(np.float64)) * self.signs

    def colors(self, f: np.ndarray) -> np.ndarray:
        """(h, w, D) -> (h, w, 3) float32 in [0, 1]: the three components min-max
        scaled together with the pair's range (as `islands.colorize`), clipped."""
        c = self.coords(f)
        span = self.hi - self.lo if self.hi > self.lo else 1.0
        rgb = np.clip((c - self.lo) / span, 0, 1)
        if rgb.shape[1] < 3:
            rgb = np.repeat(rgb[:, :1], 3, axis=1)
        return rgb.reshape(*f.shape[:2], 3).astype(np.float32)


# -- the continuous field between the teacher's locations -------------------------

def patches_at(image: torch.Tensor, coords: torch.Tensor, patch: int) -> torch.Tensor:
    """The local patches I_xy centred at continuous grid coordinates.

    image: (B, 3, h*patch, w*patch). coords: (N, 2) [x, y] in grid steps
    (`model.grid_coords`). Returns (B, N, 3*patch*patch) in the layout of
    `APM.patches` (channel, then row, then column), sampled bilinearly; at
    integer coordinates it is exactly `APM.patches(image)`.
    """
    b, _, hh, ww = image.shape
    off = torch.arange(patch, dtype=torch.float32) + 0.5 - patch / 2  # pixel-centre offsets
    cx = (coords[:, 0:1] + 0.5) * patch + off  # (N, patch) pixel positions, pixel i spans [i, i+1)
    cy = (coords[:, 1:2] + 0.5) * patch + off
    gx = (2 * cx / ww - 1)[:, None, :].expand(-1, patch, -1)  # (N, row, col)
    gy = (2 * cy / hh - 1)[:, :, None].expand(-1, -1, patch)
    grid = torch.stack([gx, gy], dim=-1).reshape(1, -1, patch * patch, 2).to(image)
    out = F.grid_sample(image, grid.expand(b, -1, -1, -1), mode="bilinear", padding_mode="border",
                        align_corners=False)  # (B, 3, N, patch*patch)
    return out.permute(0, 2, 1, 3).reshape(b, coords.shape[0], -1)


@dataclass
class QueriedField:
    """An APM field queried on a grid `scale` times the teacher's.

    field: (h*scale, w*scale, D) float32; rgb: (h*scale, w*scale, 3) in [0, 1].
    iteration: the model's TTT iteration when queried.
    """

    scale: float
    field: np.ndarray
    rgb: np.ndarray
    iteration: int


@torch.no_grad()
def query(model: APM, image: torch.Tensor, scale: float, iteration: int = -1, chunk: int = 4096) -> QueriedField:
    """Query a trained APM's field at `scale` times its grid.

    image: (1, 3, h*p, w*p), normalised as for training (`TeacherOutput.input_tensor`);
    the trigger column is model.fold(image). Locations are unfolded `chunk` at
    a time: every location is an independent query.
    """
    if scale <= 0:
        raise ApmVizError(f"query scale must be positive, got {scale}")
    h, w = model.grid
    dev = next(model.parameters()).device
    image = image.to(dev)
    coords = grid_coords(h, w, scale)
    hs, ws = int(round(h * scale)), int(round(w * scale))
    patches = patches_at(image, coords, model.config.patch) if model.config.local_patch else None
    was_training = model.training
    model.eval()
    try:
        feats, rgb = model.field(model.fold(image), coords.to(dev), chunk=chunk, patches=patches)
    finally:
        model.train(was_training)
    return QueriedField(scale, feats[0].reshape(hs, ws, -1).float().cpu().numpy(),
                        rgb[0].reshape(hs, ws, 3).float().cpu().numpy(), iteration)


# -- a run, compared --------------------------------------------------------------

@dataclass
class Frame:
    """Teacher vs APM at one snapshot, in one colour space.

    teacher_colors, apm_colors: (h, w, 3); projection: the fitted `JointProjection`.
    """

    iteration: int
    projection: JointProjection
    teacher_colors: np.ndarray
    apm_colors: np.ndarray


class Comparison:
    """Teacher vs APM over one run; each snapshot's frame and error map is
    computed once and kept, so moving a slider only reads.

    The run may still be growing: snapshots are immutable once taken.
    """

    def __init__(self, teacher: TeacherOutput, run: Run):
        self.teacher = teacher
        self.run = run
        self._frames: dict[int, Frame] = {}
        self._errors: dict[tuple[int, str], np.ndarray] = {}
        self._queries: dict[tuple[float, int], QueriedField] = {}

    def _field(self, iteration: int) -> np.ndarray:
        return self.run.snapshot(iteration).field

    def frame(self, iteration: int) -> Frame:
        it = self.run.snapshot(iteration).iteration
        if it not in self._frames:
            proj = JointProjection(self.teacher.grid, self._field(it))
            self._frames[it] = Frame(it, proj, proj.colors(self.teacher.grid), proj.colors(self._field(it)))
        return self._frames[it]

    def error(self, iteration: int, metric: Metric = "l1") -> np.ndarray:
        """(h, w) error map of the snapshot at `iteration`."""
        it = self.run.snapshot(iteration).iteration
        key = (it, metric)
        if key not in self._errors:
            self._errors[key] = error_map(self._field(it), self.teacher.grid, metric)
        return self._errors[key]

    def stats(self, iteration: int, metric: Metric = "l1", threshold: Optional[float] = None) -> ErrorStats:
        return error_stats(self._field(iteration), self.teacher.grid, metric, threshold)

    def curve(self, metric: Metric = "l1", relative: bool = True) -> list[tuple[int, float]]:
        return error_curve(self.run, self.teacher, metric, relative)

    def query(self, model: APM, image: torch.Tensor, scale: float, iteration: int) -> QueriedField:
        """The live model's field at `scale`; kept per (scale, model iteration)."""
        key = (float(scale), int(iteration))
        if key not in self._queries:
            self._queries = {k: v for k, v in self._queries.items() if k[1] == iteration}
            self._queries[key] = query(model, image, scale, iteration)
        return self._queries[key]


def summary(comparison: Comparison) -> dict:
    """First and last snapshot's mean relative L1 error, and the run's seconds."""
    curve = comparison.curve("l1", relative=True)
    if not curve:
        raise ApmVizError("this run has no snapshots yet")
    return {"first_iteration": curve[0][0], "first": curve[0][1], "last_iteration": curve[-1][0],
            "last": curve[-1][1], "seconds": comparison.run.seconds}

