"""Screen and slide figures of test-time classification hold the numbers of the run."""

import numpy as np
import pytest

from apm_viz.classify import classify_image, recipe
from apm_viz.figures.classification import classification_slide, curves_figure, curves_slide, topk_figure
from apm_viz.clip import create_clip
from apm_viz.figures.style import get_style
from apm_viz.render import figure_file
from apm_viz.images import load_image, to_array
from apm_viz.labels import load_labels


@pytest.fixture(scope="module")
def result(sample_path):
    clip = create_clip("tiny", seed=0)
    cls = clip.classifier(load_labels("cifar10"), "single")
    return classify_image(sample_path, clip, cls, recipe("laptop", iters=3), corruption="contrast", severity=4)


def test_topk_bars_are_the_top5(result):
    fig = topk_figure(result, iteration=1)
    teacher, apm = fig.data
    assert list(teacher.x) == [p for _, p in result.teacher_topk(5)][::-1]
    assert list(apm.y) == [lab for lab, _ in result.apm_topk(5, 1)][::-1]
    assert "iteration 1" in fig.layout.annotations[1].text


def test_curves_follow_every_iteration(result):
    classes = result.top_classes()
    fig = curves_figure(result, current=2)
    assert len(fig.data) == 2 * len(classes)
    np.testing.assert_allclose(fig.data[0].y, result.probs()[:, classes[0]])
    assert fig.data[1].y[0] == pytest.approx(result.teacher_probs[classes[0]])


def test_slides_draw_the_same_numbers_as_vectors(result, sample_path):
    style = get_style("light")
    clean = to_array(load_image(sample_path).image, 224)
    colors = np.random.RandomState(0).rand(14, 14, 3)
    fig = classification_slide(result, 2, style, clean=clean, island_colors=colors)
    axes = fig.axes
    assert len(axes) == 5  # clean | corrupted | islands | CLIP | APM
    assert axes[1].get_title() == "contrast 4"
    widths = [p.get_width() for p in axes[-1].patches]
    np.testing.assert_allclose(widths, [p for _, p in result.apm_topk(5, 2)][::-1])
    lines = curves_slide(result, style).axes[0].get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(), result.probs()[:, result.top_classes()[0]])
    for fmt, magic in (("png", b"\x89PNG"), ("svg", b"<?xml"), ("pdf", b"%PDF")):
        data = figure_file(lambda st: classification_slide(result, 2, st, clean, colors), fmt, "dark", dpi=60)
        assert data.startswith(magic)
