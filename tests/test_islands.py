import numpy as np
import pytest

from apm_viz.islands import (ProjectionConfig, colorize, count_islands, label_islands,
                             neighbour_similarity, project)


def regions_field(labels: np.ndarray, dim: int = 16, noise: float = 0.02, seed: int = 0) -> np.ndarray:
    """A field whose locations share one random vector per region label."""
    rng = np.random.default_rng(seed)
    protos = rng.normal(size=(labels.max() + 1, dim))
    return protos[labels] + rng.normal(scale=noise, size=labels.shape + (dim,))


def test_counts_known_regions():
    labels = np.zeros((12, 12), int)
    labels[:6, 6:] = 1
    labels[6:, :4] = 2
    labels[8:, 8:] = 3
    f = regions_field(labels)
    assert count_islands(f, tau=0.8, min_size=4) == 4
    lab = label_islands(f, tau=0.8, min_size=4)
    # Every island is exactly one region.
    for k in range(4):
        assert len(np.unique(labels[lab == k])) == 1


def test_same_vector_in_two_separate_places_is_two_islands():
    labels = np.zeros((8, 8), int)
    labels[:, :3] = 1
    labels[:, 5:] = 1  # one prototype, two disconnected places
    assert count_islands(regions_field(labels), tau=0.8, min_size=4) == 3


def test_small_components_are_ignored():
    labels = np.zeros((10, 10), int)
    labels[0, 0] = 1  # a single odd location
    labels[5:7, 5:7] = 2  # 4 locations
    f = regions_field(labels)
    assert count_islands(f, tau=0.8, min_size=4) == 2
    assert count_islands(f, tau=0.8, min_size=1) == 3
    assert label_islands(f, tau=0.8, min_size=4)[0, 0] == -1


def test_threshold_matters():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(10, 10, 8))  # no agreement anywhere
    assert count_islands(f, tau=0.9, min_size=4) == 0
    assert count_islands(f, tau=-1.0, min_size=4) == 1


def test_neighbour_similarity_low_across_boundaries():
    labels = np.zeros((8, 8), int)
    labels[:, 4:] = 1
    horiz, vert = neighbour_similarity(regions_field(labels))
    assert horiz.shape == (8, 7) and vert.shape == (7, 8)
    # Column 3 meets column 4 across the boundary; column 0 meets column 1 inside a region.
    assert horiz[:, 3].mean() < horiz[:, 0].mean() - 0.2
    assert horiz[:, 0].min() > 0.9 and vert.min() > 0.9


def _frames(n_frames=4, seed=0):
    labels = np.zeros((12, 12), int)
    labels[:6, :6], labels[:6, 6:], labels[6:, :6], labels[6:, 6:] = 0, 1, 2, 3
    rng = np.random.default_rng(seed)
    base = regions_field(labels, dim=12, noise=0.3)
    return [base + rng.normal(scale=0.05, size=base.shape) for _ in range(n_frames)]


def test_aligned_frames_move_far_less_than_independent_ones():
    frames = _frames()
    base = dict(method="tsne", dims=2, perplexity=10, first_iters=250, next_iters=60)
    aligned = project(frames, ProjectionConfig(aligned=True, **base))
    # Every frame from scratch with its own random start, as in the authors' recipe.
    indep = project(frames, ProjectionConfig(aligned=False, initialization="random", **base))

    def moves(coords):
        return np.mean([np.linalg.norm(a - b, axis=1).mean() / np.linalg.norm(a - a.mean(0), axis=1).mean()
                        for a, b in zip(coords[:-1], coords[1:])])

    assert len(indep.coords) == len(frames)
    assert moves(aligned.coords) * 5 < moves(indep.coords)


def test_projection_shapes_and_colours():
    frames = _frames(3)
    for method, dims in (("pca", 2), ("pca", 3), ("tsne", 3)):
        p = project(frames, ProjectionConfig(method=method, dims=dims, perplexity=10, first_iters=100,
                                             next_iters=20))
        assert len(p) == 3
        assert p.coords[0].shape == (144, dims)
        assert p.colors[0].shape == (12, 12, 3)
        joint = np.stack(p.colors)
        assert joint.min() >= 0 and joint.max() <= 1
        # Locations of one region share a colour, regions differ.
        c = p.colors[-1]
        assert np.linalg.norm(c[:6, :6].mean((0, 1)) - c[6:, 6:].mean((0, 1))) > 0.1


def test_colorize_3d_is_joint_min_max():
    a = np.array([[0, 0, 0], [1, 1, 1]], float)
    b = np.array([[2, 2, 2], [4, 4, 4]], float)
    ca, cb = colorize([a, b], (1, 2))
    assert ca.min() == 0 and cb.max() == 1
    assert ca[0, 1, 0] == pytest.approx(0.25)


# -- quality of aligned t-SNE frames ---------------------------------------------

def _structure(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Trustworthiness and continuity (10 neighbours) of embedding y of points x."""
    from sklearn.manifold import trustworthiness

    return trustworthiness(x, y, n_neighbors=10), trustworthiness(y, x, n_neighbors=10)


@pytest.fixture(scope="module")
def film_fields(teacher_out16):
    """The snapshots of a real laptop 16x16 run (grid supervision, default snapshots)."""
    from apm_viz.ttt import recommended, run_ttt

    return [s.field for s in run_ttt(teacher_out16, recommended("grid", preset="laptop", iters=250)).snapshots]


def _worst_against_long_optimisation(fields, config: ProjectionConfig) -> float:
    """The largest drop in trustworthiness or continuity of any aligned frame
    below a 1000-step openTSNE optimisation (its defaults) from the same
    previous frame, with openTSNE's own exact affinities."""
    from openTSNE import TSNEEmbedding
    from openTSNE.affinity import PerplexityBasedNN

    from apm_viz.islands import Projector, _prepare

    proj = Projector(config)
    proj.add(fields[0])
    worst = 0.0
    for f in fields[1:]:
        previous = proj.coords[-1].astype(np.float64)
        y = proj.add(f)
        x = _prepare(f)
        aff = PerplexityBasedNN(x, perplexity=config.perplexity, method="exact", n_jobs=1)
        ref = TSNEEmbedding(previous, aff, negative_gradient_method="bh", n_jobs=1).optimize(
            1000, exaggeration=None, momentum=0.8)
        (t, c), (t_ref, c_ref) = _structure(x, y), _structure(x, np.asarray(ref))
        worst = min(worst, t - t_ref, c - c_ref)
    return worst


def test_aligned_frames_keep_the_structure_of_a_long_optimisation(film_fields):
    # The criterion ProjectionConfig's later-frame defaults were chosen by.
    assert _worst_against_long_optimisation(film_fields, ProjectionConfig()) >= -0.01


def test_the_structure_criterion_catches_frames_cut_short(film_fields):
    # Two steps from the previous frame as it is: the same check must fail.
    assert _worst_against_long_optimisation(film_fields, ProjectionConfig(next_iters=2, smoothing=0)) < -0.01
