"""The Fig. 2 measurement: one timing per chunk size, sane numbers, a figure."""

import numpy as np
import pytest

from apm_viz.efficiency import PAPER_FIG2, FieldTiming, Fig2Result, measure_fig2
from apm_viz.figures.efficiency import fig2_figure
from apm_viz.images import load_image, to_array
from conftest import laptop_parameters


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
    assert [t.chunks_total for t in result.field] == [256, 37, 4, 1]  # 256 locations: 36 passes of 7 and one of 4
    for t in result.field:
        assert np.isfinite(t.seconds) and t.seconds > 0
        assert t.chunks_timed >= 1 and t.chunks_timed <= t.chunks_total
    assert not result.field[-1].extrapolated  # one pass of all locations always fits
    assert result.teacher_seconds > 0
    # Counted by hand: the laptop field MLP per location, code 256 -> 512 -> 512 -> 256 -> head 384.
    assert result.macs_per_location == 256 * 512 + 512 * 512 + 512 * 256 + 256 * 384
    assert result.apm_parameters == laptop_parameters(16, 384)


def test_progress_reaches_the_end(result):
    fractions = [f for f, _ in result.progress_seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_rows_and_figure(result):
    rows = result.rows()
    assert len(rows) == 4
    assert [r["APM field (s)"] for r in rows] == [t.seconds for t in result.field]
    assert all(r["teacher forward (s)"] == result.teacher_seconds for r in rows)
    # Speed-ups of known timings: a 2.2 s teacher against 1.1 s and 0.01 s fields.
    known = Fig2Result(preset="laptop", grid=16, locations=256, apm_parameters=1, macs_per_location=1,
                       teacher="t", teacher_parameters=1, device="cpu", threads=1, repeats=1,
                       field=[FieldTiming(7, 1.1, 37, 37), FieldTiming(224, 0.01, 1, 2)], teacher_seconds=2.2)
    assert [r["teacher / APM"] for r in known.rows()] == pytest.approx([2.0, 220.0])
    assert [r["extrapolated"] for r in known.rows()] == [False, True]
    fig = fig2_figure(result)
    names = [tr.name for tr in fig.data]
    assert any("paper" in n for n in names) and any("this machine" in n for n in names)
    assert list(fig.data[-1].y) == [PAPER_FIG2["vit_b16_seconds"]] * 2


def test_bad_image_shape_is_refused(small_teacher):
    with pytest.raises(ValueError):
        measure_fig2(small_teacher, np.zeros((100, 100, 3), np.float32), "laptop")
