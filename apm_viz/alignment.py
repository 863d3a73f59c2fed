"""Alignment: does a field's structure follow the teacher's grid or the positional code?

A field's main structure is its top principal directions over the grid: the
left singular vectors of the centred (N, D) field, N = h*w locations, each an
N-vector (a pattern over the grid). The alignment of a field is the share of
that structure lying in

- the teacher grid's own top principal subspace (what the image looks like to
  the teacher), and
- the span of smooth positional patterns cos(pi a (x+.5)/w) cos(pi b (y+.5)/h)
  for 0 <= a, b < 4 without the constant (what a positional code makes first:
  blocks and gradients aligned with the axes).

Each share is the mean squared length of the directions' projections on the
subspace, in [0, 1]. A direction drawn at random among the N - 1 centred
patterns puts r / (N - 1) of itself in an r-dimensional subspace: 10/255 =
0.039 (teacher) and 15/255 = 0.059 (position) at 16x16. Both shares can be high
at once when the teacher's own structure is smooth; the two subspaces are not
orthogonal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: Principal directions of the field that are compared (its main structure).
FIELD_DIRECTIONS = 3
#: Dimension of the teacher subspace they are compared with.
TEACHER_DIRECTIONS = 10
#: Smooth positional patterns per axis (frequencies 0..3); 4 x 4 - 1 = 15 without the constant.
POSITION_FREQUENCIES = 4


@dataclass(frozen=True)
class Alignment:
    """Where a field's structure lies.

    teacher_share: share of its top principal directions in the teacher grid's
        top principal subspace, in [0, 1] (nan for a field with no structure).
    position_share: share in the span of the smooth positional patterns.
    """

    teacher_share: float
    position_share: float


def principal_directions(f: np.ndarray, k: int) -> np.ndarray:
    """(h, w, D) field -> (N, k') orthonormal left singular vectors of the
    centred (N, D) field, largest first; k' <= k keeps only directions with
    variance (a constant field has none)."""
    x = f.reshape(-1, f.shape[-1]).astype(np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    if s.size == 0 or s[0] <= 0:
        return u[:, :0]
    keep = min(k, int((s > s[0] * 1e-9).sum()))
    return u[:, :keep]


def position_patterns(h: int, w: int, frequencies: int = POSITION_FREQUENCIES) -> np.ndarray:
    """(N, frequencies^2 - 1) smooth positional patterns, row-major like a field:
    column (a, b) is cos(pi a (x+.5)/w) cos(pi b (y+.5)/h), the constant left out."""
    ys, xs = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    cols = [np.cos(np.pi * a * xs / w) * np.cos(np.pi * b * ys / h)
            for b in range(frequencies) for a in range(frequencies) if (a, b) != (0, 0)]
    return np.stack([c.reshape(-1) for c in cols], axis=1)


def subspace_share(directions: np.ndarray, basis: np.ndarray) -> float:
    """Mean squared length of the (N, k) orthonormal `directions` projected on
    the span of `basis` (N, r); nan when there are no directions."""
    if directions.shape[1] == 0:
        return float("nan")
    q, r = np.linalg.qr(basis)
    q = q[:, np.abs(np.diag(r)) > 1e-10 * max(np.abs(np.diag(r)).max(), 1e-300)]
    return float(((q.T @ directions) ** 2).sum() / directions.shape[1])


def alignment(f: np.ndarray, teacher_grid: np.ndarray) -> Alignment:
    """How much of field `f` (h, w, D) follows `teacher_grid` (h, w, D') and
    how much the positional code (see the module docstring)."""
    return alignment_history([f], teacher_grid)[0]


def alignment_history(fields: Sequence[np.ndarray], teacher_grid: np.ndarray) -> list[Alignment]:
    """`alignment` of each (h, w, D) field in a list (e.g. a run's snapshots);
    the teacher's subspace is computed once."""
    teacher = principal_directions(teacher_grid, TEACHER_DIRECTIONS)
    out = []
    for f in fields:
        if f.shape[:2] != teacher_grid.shape[:2]:
            raise ValueError(f"field {f.shape} and teacher grid {teacher_grid.shape} must share one grid")
        u = principal_directions(f, FIELD_DIRECTIONS)
        out.append(Alignment(subspace_share(u, teacher), subspace_share(u, position_patterns(*f.shape[:2]))))
    return out


def alignment_rows(iterations: Sequence[int], fields: Sequence[np.ndarray],
                   teacher_grid: np.ndarray) -> list[tuple[int, float, float]]:
    """[(iteration, teacher share, position share)] for a run's snapshot fields."""
    return [(int(i), a.teacher_share, a.position_share)
            for i, a in zip(iterations, alignment_history(fields, teacher_grid))]
