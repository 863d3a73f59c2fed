"""Islands of agreement: project fields, colour them, count them.

A field is an (h, w, D) array (an APM snapshot or a teacher grid). A
projection maps each of its N = h*w vectors to 2 or 3 coordinates; colours
follow the coordinates, so locations whose vectors agree get the same colour
and an island shows up as a patch of one colour on the grid.

Frames of a run are aligned: frame t's t-SNE starts from frame t-1's
embedding (no early exaggeration), so a colour means the same thing from one
iteration to the next and the film does not flicker. The authors' recipe
("sklearn-tsne") projects every frame on its own with scikit-learn and scales
each frame's colours by its own min and max; its colours do not carry over.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Literal, Optional, Sequence

import numpy as np
from scipy.sparse import coo_matrix, diags
from scipy.sparse.csgraph import connected_components

Method = Literal["tsne", "pca", "sklearn-tsne"]

#: Default agreement threshold: neighbours whose centred cosine similarity is
#: at least this belong to the same island.
DEFAULT_TAU = 0.8
#: Components smaller than this many locations are not counted as islands.
DEFAULT_MIN_SIZE = 4


@dataclass(frozen=True)
class ProjectionConfig:
    """How fields are projected (openTSNE with Barnes-Hut gradients for "tsne").

    method: "tsne" (openTSNE), "pca" (fast, linear) or "sklearn-tsne"
        (scikit-learn's TSNE from scratch for every frame: the authors' recipe).
    dims: 2 or 3; 1 (grayscale maps, the authors' 1-D variant) for "sklearn-tsne" and "pca".
    perplexity: t-SNE perplexity (the authors use 3; larger gives smoother islands).
        Each location's affinities reach its 3 x perplexity nearest neighbours.
    aligned: start each frame from the previous frame's embedding.
    first_iters: optimisation steps of a frame from scratch, after openTSNE's
        250 steps of early exaggeration.
    next_iters: optimisation steps of a later aligned frame.
    metric: "euclidean" or "cosine" between feature vectors.
    initialization: "pca" or "random" for every frame t-SNE starts from
        scratch (the first, or all when not aligned; the authors: random).
    seed: random state of initialisations and approximate neighbour searches.
    neighbors: "exact": every pairwise distance (scikit-learn, in row chunks),
        the k nearest handed to openTSNE as precomputed neighbours; the
        affinities openTSNE's own method="exact" gives, in less time. Any
        other value is openTSNE's `method` ("auto": exact below 1000 points,
        Annoy above; "annoy"; "pynndescent").
    smoothing: a later frame starts from the previous frame's embedding with
        every location moved to the affinity-weighted mean of where its new
        neighbours were, repeated this many times (then rescaled to the
        previous spread); 0 starts from the previous embedding as it is.
        Where the field changed much between two snapshots, each location then
        starts beside its new neighbours and a few steps suffice; colours keep
        their meaning, every start being a mean of previous positions.
    learning_rate: later frames' learning rate as a multiple of openTSNE's
        "auto" rate (N, the number of locations).
    theta: Barnes-Hut accuracy (openTSNE's theta; 0 is the exact gradient).

    The later-frame defaults (next_iters, smoothing, learning_rate, theta,
    neighbors) were chosen by one criterion, measured on laptop 32x32 and 16x16
    films (BENCHMARKS.md): every aligned frame's trustworthiness and continuity over
    10 neighbours (scikit-learn's `trustworthiness`) lie within 0.01 of those
    of a 1000-step openTSNE optimisation (its defaults) from the same previous
    embedding with the same affinities.
    """

    method: Method = "tsne"
    dims: int = 3
    perplexity: float = 30.0
    aligned: bool = True
    first_iters: int = 500
    next_iters: int = 100
    metric: str = "euclidean"
    initialization: str = "pca"
    seed: int = 0
    neighbors: str = "exact"
    smoothing: int = 3
    learning_rate: float = 4.0
    theta: float = 0.5


@dataclass
class Projection:
    """Coordinates and colours of a list of fields, frame by frame.

    coords: per frame (N, dims), N = h*w in row-major grid order.
    colors: per frame (h, w, 3) float32 in [0, 1], one colour space for all frames.
    """

    config: ProjectionConfig
    grid: tuple[int, int]
    coords: list[np.ndarray]
    colors: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.coords)


def _prepare(f: np.ndarray) -> np.ndarray:
    """(h, w, D) -> (N, D) float64, centred and scaled to unit overall variance."""
    x = f.reshape(-1, f.shape[-1]).astype(np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    scale = np.sqrt((x**2).sum(axis=1).mean())
    return x / scale if scale > 0 else x


def _jitter_if_constant(x: np.ndarray, seed: int) -> np.ndarray:
    # A field with (near-)identical vectors has no neighbourhoods; a tiny jitter
    # keeps t-SNE's perplexity search defined without changing anything visible.
    if np.ptp(x, axis=0).max() < 1e-9:
        x = x + np.random.default_rng(seed).normal(0, 1e-6, x.shape)
    return x


def _exact_neighbors(x: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k nearest other rows of x (N, D): indices and distances, both
    (N, k), nearest first. Distances in row chunks that fit scikit-learn's
    working memory."""
    from sklearn.metrics import pairwise_distances_chunked

    def nearest(d: np.ndarray, start: int):
        rows = np.arange(d.shape[0])
        d[rows, start + rows] = np.inf  # a location is not its own neighbour
        idx = np.argpartition(d, k - 1, axis=1)[:, :k]
        dist = np.take_along_axis(d, idx, axis=1)
        order = np.argsort(dist, axis=1, kind="stable")
        return np.take_along_axis(idx, order, axis=1), np.take_along_axis(dist, order, axis=1)

    chunks = list(pairwise_distances_chunked(x, metric=metric, reduce_func=nearest))
    return np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])


def _smoothed(previous: np.ndarray, P, steps: int) -> np.ndarray:
    """previous (N, dims) with every row moved `steps` times to the P-weighted
    mean of its neighbours' rows, then centred and scaled back to the previous
    mean distance from the centre."""
    if steps <= 0:
        return previous.copy()
    weights = diags(1.0 / np.maximum(np.asarray(P.sum(axis=1)).ravel(), 1e-300)) @ P
    y = previous
    for _ in range(steps):
        y = weights @ y
    y = y - y.mean(axis=0)
    spread = np.linalg.norm(previous - previous.mean(axis=0), axis=1).mean()
    have = np.linalg.norm(y, axis=1).mean()
    return y * (spread / have) if have > 0 else y


class Projector:
    """Projects fields one frame at a time, each aligned to the one before.

    A face can add snapshots as training produces them and show each frame at
    once; `project` adds a whole list. PCA frames are fitted on the first
    frame's axes when added one by one (aligned), on all frames by `project`.
    """

    def __init__(self, config: Optional[ProjectionConfig] = None):
        self.config = config or ProjectionConfig()
        if self.config.dims not in (2, 3) and not (self.config.dims == 1 and self.config.method != "tsne"):
            raise ValueError("dims must be 2 or 3 (or 1 for the sklearn-tsne and pca methods)")
        self.coords: list[np.ndarray] = []
        self.grid: Optional[tuple[int, int]] = None
        self._pca = None

    def add(self, f: np.ndarray, affinities=None) -> np.ndarray:
        """Project one (h, w, D) field; returns its (N, dims) coordinates.

        affinities: what `affinities(f)` returned for this frame, from this or
        another projector with the same `affinity_key` (e.g. the 2-D and 3-D
        projections of one film): the neighbour search is then done once.
        """
        cfg = self.config
        if self.grid is None:
            self.grid = f.shape[:2]
        elif f.shape[:2] != self.grid:
            raise ValueError("all frames of a projection must share one grid")
        x = _prepare(f)
        k = len(self.coords)
        if cfg.method == "pca":
            c = self._pca_frame(x)
        elif cfg.method == "sklearn-tsne":
            c = independent_frame(f, k, cfg)
        elif k == 0 or not cfg.aligned:
            c = self._tsne_scratch(x, self._seed(k), affinities)
        else:
            c = self._tsne_next(x, self.coords[-1], affinities)
        c = c.astype(np.float32)
        self.coords.append(c)
        return c

    def result(self) -> Projection:
        """The frames so far, coloured in one joint colour space."""
        if self.config.method == "sklearn-tsne":  # independent frames share no colour space
            colors = [colorize([c], self.grid)[0] for c in self.coords]
        else:
            colors = colorize(self.coords, self.grid)
        return Projection(self.config, self.grid, list(self.coords), colors)

    # -- t-SNE (openTSNE) --
    def _perplexity(self, n: int) -> float:
        return min(self.config.perplexity, (n - 1) / 3.0)

    def _gradient(self, n: int) -> str:
        # FFT refuses more than 2 dimensions; at a few thousand points BH is also faster.
        return "bh" if self.config.dims > 2 or n <= 5000 else "fft"

    def _seed(self, k: int) -> int:
        return self.config.seed + (0 if self.config.aligned else k)

    def affinity_key(self, f: np.ndarray) -> Optional[tuple]:
        """What the next frame's t-SNE affinities depend on besides the field
        (None for PCA): projectors with equal keys can share `affinities`."""
        cfg, k, n = self.config, len(self.coords), f.shape[0] * f.shape[1]
        if cfg.method != "tsne":
            return None
        return (k == 0 or not cfg.aligned, self._perplexity(n), cfg.metric, cfg.neighbors, self._seed(k))

    def affinities(self, f: np.ndarray):
        """The openTSNE affinities of the next frame's field (h, w, D), exactly
        as `add` would compute them (None for PCA)."""
        key = self.affinity_key(f)
        if key is None:
            return None
        scratch, *_, seed = key
        return self._affinities(_prepare(f), scratch, seed)

    def _affinities(self, x: np.ndarray, scratch: bool, seed: int):
        from openTSNE.affinity import MultiscaleMixture, PerplexityBasedNN
        from openTSNE.nearest_neighbors import PrecomputedNeighbors

        cfg, n = self.config, x.shape[0]
        x, perplexity = _jitter_if_constant(x, seed), self._perplexity(n)
        if cfg.neighbors == "exact":
            search = dict(knn_index=PrecomputedNeighbors(*_exact_neighbors(x, min(n - 1, int(3 * perplexity)),
                                                                            cfg.metric)))
        else:
            search = dict(data=x, method=cfg.neighbors, metric=cfg.metric, random_state=seed)
        if scratch:  # what openTSNE's TSNE.fit builds for a single perplexity
            return MultiscaleMixture(perplexities=perplexity, n_jobs=1, **search)
        return PerplexityBasedNN(perplexity=perplexity, n_jobs=1, **search)

    @staticmethod
    def _own(affinities):
        # openTSNE scales P in place during early exaggeration and back, which
        # is not exact in floating point: each projector optimises its own copy.
        own = copy.copy(affinities)
        own.P = affinities.P.copy()
        return own

    def _tsne_scratch(self, x: np.ndarray, seed: int, affinities=None) -> np.ndarray:
        from openTSNE import TSNE

        cfg, n = self.config, x.shape[0]
        aff = self._affinities(x, True, seed) if affinities is None else self._own(affinities)
        est = TSNE(n_components=cfg.dims, perplexity=self._perplexity(n), n_iter=cfg.first_iters,
                   metric=cfg.metric, initialization=cfg.initialization, theta=cfg.theta,
                   negative_gradient_method=self._gradient(n), random_state=seed, n_jobs=1)
        return np.asarray(est.fit(_jitter_if_constant(x, seed), affinities=aff))

    def _tsne_next(self, x: np.ndarray, previous: np.ndarray, affinities=None) -> np.ndarray:
        from openTSNE import TSNEEmbedding

        cfg, n = self.config, x.shape[0]
        aff = self._affinities(x, False, cfg.seed) if affinities is None else self._own(affinities)
        start = _smoothed(previous.astype(np.float64), aff.P, cfg.smoothing)
        emb = TSNEEmbedding(start, aff, negative_gradient_method=self._gradient(n), random_state=cfg.seed, n_jobs=1)
        # No early exaggeration: the previous frame's layout is the starting point.
        return np.asarray(emb.optimize(n_iter=cfg.next_iters, exaggeration=None, momentum=0.8, theta=cfg.theta,
                                       learning_rate=cfg.learning_rate * n))

    # -- PCA --
    def _pca_frame(self, x: np.ndarray) -> np.ndarray:
        from sklearn.decomposition import PCA

        cfg = self.config
        k = min(cfg.dims, x.shape[1], x.shape[0])
        if self._pca is None or not cfg.aligned:
            self._pca = PCA(n_components=k, random_state=cfg.seed).fit(x)
        c = self._pca.transform(x)
        return np.pad(c, ((0, 0), (0, cfg.dims - k))) if k < cfg.dims else c


def independent_tsne(x: np.ndarray, dims: int = 3, perplexity: float = 3.0, seed: int = 0,
                     initialization: str = "random", metric: str = "euclidean") -> np.ndarray:
    """One frame the authors' way: scikit-learn's TSNE from scratch on (N, D)
    vectors; returns (N, dims). The authors set no seed; here frame k of a
    projection uses seed + k, so frames stay independent and runs repeatable.
    One OpenMP thread, like openTSNE's n_jobs=1 here: on a busy 2-core machine
    more threads made one 256-point frame 8x slower (115 s against 15 s)."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = _jitter_if_constant(x, seed)
    perplexity = min(perplexity, (x.shape[0] - 1) / 3.0)
    with threadpool_limits(1):
        return TSNE(n_components=dims, perplexity=perplexity, init=initialization, metric=metric,
                    random_state=seed).fit_transform(x)


def independent_frame(f: np.ndarray, k: int, config: ProjectionConfig) -> np.ndarray:
    """Frame k of a "sklearn-tsne" projection: (h, w, D) field -> (N, dims),
    exactly as `Projector.add` makes it (seed config.seed + k)."""
    return independent_tsne(_prepare(f), config.dims, config.perplexity, config.seed + k,
                            config.initialization, config.metric).astype(np.float32)


def project(fields: Sequence[np.ndarray], config: Optional[ProjectionConfig] = None) -> Projection:
    """Project a list of (h, w, D) fields (all the same grid) to 2-D or 3-D.

    Returns a `Projection` with per-frame coordinates (N, dims) and colours
    (h, w, 3) in one colour space across frames. Aligned PCA is fitted on all
    frames together.
    """
    cfg = config or ProjectionConfig()
    if not fields:
        raise ValueError("nothing to project")
    projector = Projector(cfg)
    if cfg.method == "pca" and cfg.aligned:
        from sklearn.decomposition import PCA

        joint = np.concatenate([_prepare(f) for f in fields], axis=0)
        projector._pca = PCA(n_components=min(cfg.dims, joint.shape[1]), random_state=cfg.seed).fit(joint)
    for f in fields:
        projector.add(f)
    return projector.result()


# -- colours ------------------------------------------------------------------

#: Corners of the 2-D colour map: (0,0), (1,0), (0,1), (1,1).
_CORNERS = np.array([[0.20, 0.40, 0.95], [0.95, 0.25, 0.25], [0.15, 0.80, 0.45], [0.98, 0.85, 0.15]])


def colorize(coords: Sequence[np.ndarray], grid: tuple[int, int]) -> list[np.ndarray]:
    """Colours for coordinates, one joint min-max over all frames.

    3-D: the three components min-max scaled together to RGB (the paper's
    mapping). 1-D: grayscale, min-max scaled (the authors' 1-D variant).
    2-D: each axis scaled to [0, 1], then a bilinear four-corner colour map. Returns per frame (h, w, 3) float32.
    """
    joint = np.concatenate(coords, axis=0)
    dims = joint.shape[1]
    h, w = grid
    out = []
    if dims in (1, 3):
        lo, hi = joint.min(), joint.max()
        for c in coords:
            v = ((c - lo) / (hi - lo if hi > lo else 1.0)).reshape(h, w, dims)
            out.append(np.repeat(v, 3 // dims, axis=-1).astype(np.float32))
        return out
    lo, hi = joint.min(axis=0), joint.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    for c in coords:
        u, v = ((c - lo) / span).T
        rgb = (np.outer((1 - u) * (1 - v), _CORNERS[0]) + np.outer(u * (1 - v), _CORNERS[1])
               + np.outer((1 - u) * v, _CORNERS[2]) + np.outer(u * v, _CORNERS[3]))
        out.append(np.clip(rgb, 0, 1).reshape(h, w, 3).astype(np.float32))
    return out


# -- island metrics -------------------------------------------------------------

def islands_text(n: int) -> str:
    """"1 island", "2 islands": how a count is printed."""
    return f"{n} island" + ("" if n == 1 else "s")


def _unit(f: np.ndarray, center: bool) -> np.ndarray:
    x = f.astype(np.float64)
    if center:
        x = x - x.reshape(-1, x.shape[-1]).mean(axis=0)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def neighbour_similarity(f: np.ndarray, center: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity of each location with its right and lower neighbour.

    f: (h, w, D). Returns (h, w-1) horizontal and (h-1, w) vertical similarities.
    center: subtract the field's mean vector first, so a component every
        location shares does not make everything agree.
    """
    u = _unit(f, center)
    return (u[:, :-1] * u[:, 1:]).sum(-1), (u[:-1] * u[1:]).sum(-1)


def label_islands(f: np.ndarray, tau: float = DEFAULT_TAU, min_size: int = DEFAULT_MIN_SIZE,
                  center: bool = True) -> np.ndarray:
    """Islands of agreement as labels.

    The grid graph joins 4-neighbours whose cosine similarity is >= tau; its
    connected components of at least `min_size` locations are islands.
    Returns (h, w) int labels 0..K-1 (largest island first), -1 elsewhere.
    """
    h, w = f.shape[:2]
    horiz, vert = neighbour_similarity(f, center)
    idx = np.arange(h * w).reshape(h, w)
    hs, vs = horiz >= tau, vert >= tau
    rows = np.concatenate([idx[:, :-1][hs], idx[:-1][vs]])
    cols = np.concatenate([idx[:, 1:][hs], idx[1:][vs]])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(h * w, h * w))
    _, comp = connected_components(graph, directed=False)
    sizes = np.bincount(comp)
    keep = [c for c in np.argsort(-sizes, kind="stable") if sizes[c] >= min_size]
    relabel = np.full(len(sizes), -1)
    relabel[keep] = np.arange(len(keep))
    return relabel[comp].reshape(h, w)


def count_islands(f: np.ndarray, tau: float = DEFAULT_TAU, min_size: int = DEFAULT_MIN_SIZE,
                  center: bool = True) -> int:
    """Number of islands of agreement in an (h, w, D) field (see `label_islands`)."""
    return int(label_islands(f, tau, min_size, center).max() + 1)


def island_history(fields: Sequence[np.ndarray], tau: float = DEFAULT_TAU, min_size: int = DEFAULT_MIN_SIZE,
                   center: bool = True) -> list[int]:
    """Island count of each field in a list (e.g. a run's snapshots)."""
    return [count_islands(f, tau, min_size, center) for f in fields]
