"""The Fig. 2 measurement: one timing per chunk size, sane numbers, a figure."""

import numpy as np
import pytest

from apm_viz.efficiency import PAPER_FIG2, fig2_figure, measure_fig2
from apm_viz.images import load_image, to_array


@pytest.fixture(scope="module")
def result(small_teacher, sample_path):
    image = to_array(load_image(sample_path).image, 16 * 14)
    seen = []
    res = measure_fig2(small_teacher, image, "laptop", chunks=(1, 7, 64, None), repeats=1, budget=0.05,
                       progress=lambda f, what: seen.append((f, what)))
    res.progress_seen = seen
    return res


def test_one_timing_per_chunk_size_covering_the_grid(result):
    assert result.grid == 16 and result.locations == 256
    assert [t.chunk for t in result.field] == [1, 7, 64, 256]
    for t in result.field:
        assert np.isfinite(t.seconds) and t.seconds > 0
        assert t.chunks_total == -(-256 // t.chunk)
        assert t.chunks_timed >= 1 and t.chunks_timed <= t.chunks_total
    assert not result.field[-1].extrapolated  # one pass of all locations always fits
    assert result.teacher_seconds > 0
    assert result.macs_per_location > 0 and result.apm_parameters > 0


def test_progress_reaches_the_end(result):
    fractions = [f for f, _ in result.progress_seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_rows_and_figure(result):
    rows = result.rows()
    assert len(rows) == 4 and rows[0]["teacher / APM"] == pytest.approx(result.teacher_seconds / rows[0]["APM field (s)"])
    fig = fig2_figure(result)
    names = [tr.name for tr in fig.data]
    assert any("paper" in n for n in names) and any("this machine" in n for n in names)
    assert list(fig.data[-1].y) == [PAPER_FIG2["vit_b16_seconds"]] * 2


def test_bad_image_shape_is_refused(small_teacher):
    with pytest.raises(ValueError):
        measure_fig2(small_teacher, np.zeros((100, 100, 3), np.float32), "laptop")
