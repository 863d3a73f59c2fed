import numpy as np
import pytest
from scipy.fft import dct

from apm_viz.alignment import alignment, alignment_history, position_patterns, principal_directions
from apm_viz.islands import islands_text


def smooth_cosines(h: int, w: int) -> np.ndarray:
    """The 15 patterns written out here on their own: cos(pi a (x+.5)/w) cos(pi b (y+.5)/h), a, b < 4, no constant."""
    cols = []
    for b in range(4):
        for a in range(4):
            if a or b:
                cols.append([np.cos(np.pi * a * (x + 0.5) / w) * np.cos(np.pi * b * (y + 0.5) / h)
                             for y in range(h) for x in range(w)])
    return np.array(cols).T


def test_position_patterns_are_the_fifteen_smooth_cosines():
    assert np.allclose(position_patterns(16, 12), smooth_cosines(16, 12))
    assert position_patterns(16, 16).shape == (256, 15)


def test_a_field_made_of_smooth_cosines_lies_in_the_position_span():
    rng = np.random.default_rng(0)
    f = (smooth_cosines(16, 16) @ rng.normal(size=(15, 48))).reshape(16, 16, 48)
    teacher = rng.normal(size=(16, 16, 32))
    a = alignment(f, teacher)
    assert a.position_share == pytest.approx(1.0, abs=1e-9)
    assert a.teacher_share < 0.3


def test_a_field_equal_to_the_teacher_grid_has_teacher_share_one():
    rng = np.random.default_rng(1)
    teacher = rng.normal(size=(16, 16, 32)).astype(np.float32)
    assert alignment(teacher, teacher).teacher_share == pytest.approx(1.0, abs=1e-6)
    # Any mixture of the teacher's 10 main patterns over the grid lies in its subspace, too.
    x = teacher.reshape(256, 32) - teacher.reshape(256, 32).mean(0)
    u = np.linalg.svd(x, full_matrices=False)[0][:, :10]
    mixed = (u @ rng.normal(size=(10, 20))).reshape(16, 16, 20)
    assert alignment(mixed, teacher).teacher_share == pytest.approx(1.0, abs=1e-6)


def test_random_fields_score_the_subspace_dimension_ratio():
    # A centred Gaussian field's principal directions are uniform among the N - 1
    # centred patterns, so on average r / (N - 1) of each lies in an r-dim subspace.
    rng = np.random.default_rng(2)
    teacher = rng.normal(size=(16, 16, 24))
    shares = [alignment(rng.normal(size=(16, 16, 40)), teacher) for _ in range(40)]
    assert np.mean([s.teacher_share for s in shares]) == pytest.approx(10 / 255, abs=0.01)
    assert np.mean([s.position_share for s in shares]) == pytest.approx(15 / 255, abs=0.01)


def test_a_step_between_two_halves_scores_its_low_dct_energy():
    # Rank one: the field is a left/right step times one vector. Its position share
    # is the step's energy in DCT-II coefficients 1..3 along x (scipy's DCT).
    w = 16
    step = np.where(np.arange(w) < w // 2, 1.0, -1.0)
    coef = dct(step, type=2, norm="ortho")
    expected = (coef[1:4] ** 2).sum() / (coef[1:] ** 2).sum()
    f = np.tile(step, (16, 1))[..., None] * np.random.default_rng(3).normal(size=7)
    assert principal_directions(f, 3).shape[1] == 1
    assert alignment(f, np.random.default_rng(4).normal(size=(16, 16, 8))).position_share == \
        pytest.approx(expected, abs=1e-9)
    assert 0.85 < expected < 0.95  # 8/pi^2 (1 + 1/9) of a square wave's energy, less its sampling


def test_a_constant_field_has_no_alignment_and_shapes_must_match():
    teacher = np.random.default_rng(5).normal(size=(8, 8, 4))
    a = alignment(np.ones((8, 8, 4)), teacher)
    assert np.isnan(a.teacher_share) and np.isnan(a.position_share)
    with pytest.raises(ValueError, match="share one grid"):
        alignment_history([np.ones((4, 4, 4))], teacher)


def test_island_counts_are_written_in_words():
    assert [islands_text(n) for n in (0, 1, 2, 11)] == ["0 islands", "1 island", "2 islands", "11 islands"]
