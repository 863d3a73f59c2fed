"""README's "Python" section runs as written: its python blocks, in order, in
one namespace (as in a notebook), from a folder where `assets/` are the
shipped samples; then what they made is checked."""

import base64
import io
import json
import re
import zipfile

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from matplotlib.figure import Figure
from PIL import Image

from conftest import ASSETS, ROOT

PLOTLY_MIME = "application/vnd.plotly.v1+json"  # what Jupyter renders inline


def python_section() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = re.search(r"^## Python\n(.*?)(?=^## )", text, re.S | re.M)
    assert section, "README.md has no '## Python' section"
    return re.findall(r"^```python\n(.*?)^```", section.group(1), re.S | re.M)


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    folder = tmp_path_factory.mktemp("notebook")
    (folder / "assets").symlink_to(ASSETS)
    blocks = python_section()
    namespace: dict = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        for k, code in enumerate(blocks):
            exec(compile(code, f"README.md python block {k + 1}", "exec"), namespace)
    return folder, blocks, namespace


def test_section_shows_every_entry_point():
    code = "\n".join(python_section())
    for name in ("islands_film", "teacher_vs_apm", "latent_walk", "classification", "boring_video"):
        assert f"apm_viz.{name}(" in code
    for method in (".figure(", ".export("):
        assert code.count(method) >= 5


def shows_inline(fig) -> bool:
    """A plotly figure whose display bundle, under the renderer a Jupyter kernel
    uses (plotly_mimetype), carries its traces."""
    if not isinstance(fig, go.Figure):
        return False
    before = pio.renderers.default
    pio.renderers.default = "plotly_mimetype"
    try:
        bundle = fig._repr_mimebundle_()
    finally:
        pio.renderers.default = before
    return PLOTLY_MIME in bundle and len(bundle[PLOTLY_MIME]["data"]) == len(fig.data) > 0


def test_islands_film(ran):
    folder, _, ns = ran
    film = ns["film"]
    # iters=20: iteration 0, the early ones (1, 2, 3, 5, 8, 12, 18) and the last, counted by hand.
    assert [i for i, _ in film.islands] == [0, 1, 2, 3, 5, 8, 12, 18, 20]
    assert all(isinstance(c, int) and c >= 0 for _, c in film.islands)
    assert film.result.teacher.weights.kind == "random"
    fig = film.figure(iteration=12)
    assert shows_inline(fig) and "iteration 12" in fig.layout.title.text
    assert film.figure(iteration=15).layout.title.text.endswith("iteration 12")  # the snapshot taken before
    for kind in ("input", "scatter", "loss", "islands"):
        assert shows_inline(film.figure(kind=kind))
    assert isinstance(film.slide("strip"), Figure)
    zip_path = folder / ns["zip_path"]
    assert zip_path.parent == folder / "talk" and zip_path.is_file()
    names = zipfile.ZipFile(zip_path).namelist()
    assert "chelsea-talk/figures/strip.png" in names and "chelsea-talk/animations/islands.gif" in names
    assert not any(n.endswith((".svg", ".pdf", ".mp4")) for n in names)  # formats=("png",), animations=("gif",)
    metrics = json.loads(zipfile.ZipFile(zip_path).read("chelsea-talk/metrics.json"))
    assert [[i, c] for i, c in film.islands] == metrics["islands"]


def test_teacher_vs_apm(ran):
    folder, _, ns = ran
    fit = ns["fit"]
    assert fit.iterations[0] == 0 and fit.iterations[-1] == 30
    error = fit.figure(kind="error")
    assert shows_inline(error)
    # The paper's error: per location, |APM - teacher| summed over channels.
    expected = np.abs(fit.comparison.run.snapshot(30).field - fit.comparison.teacher.grid).sum(-1)
    np.testing.assert_allclose(np.asarray(error.data[0].z), expected, rtol=1e-4, atol=1e-5)
    for kind in ("teacher", "apm", "curve"):
        assert shows_inline(fit.figure(kind=kind))
    svg = (folder / "talk" / "teacher-vs-apm-it0030.svg").read_text()
    assert svg.lstrip().startswith(("<?xml", "<svg")) and "Teacher vs APM" in svg


def test_latent_walk(ran):
    folder, _, ns = ran
    walk = ns["walk"]
    assert walk.names == ("chelsea.jpg", "coffee.jpg")
    assert walk.walk.steps.tolist() == [0, 1, 2, 3, 4]
    fig = walk.figure()
    assert shows_inline(fig)
    # Five 96-px frames with 4-px gaps, drawn as one image (a PNG in the trace's source).
    header, data = fig.data[0].source.split(",", 1)
    assert header == "data:image/png;base64"
    assert np.asarray(Image.open(io.BytesIO(base64.b64decode(data)))).shape == (96, 5 * 96 + 4 * 4, 3)
    dreams = walk.dreams(2)
    assert dreams.shape == (2, 16, 16, 3) and 0 <= dreams.min() and dreams.max() <= 1
    assert Image.open(folder / "talk" / "walk.png").size[0] > 0
    assert Image.open(folder / "talk" / "walk.gif").n_frames == 8  # 5 forwards, 3 back


def test_classification(ran):
    folder, _, ns = ran
    cls = ns["cls"]
    assert cls.result.labels[:3] == ("airplane", "automobile", "bird")  # CIFAR-10's order
    assert cls.result.iterations == 6  # iterations 0..5
    fig = cls.figure()
    assert shows_inline(fig) and shows_inline(cls.figure(kind="curves"))
    saved = json.loads((folder / "talk" / "classification.json").read_text())
    assert [lab for lab, _ in saved["teacher_top5"]] == [lab for lab, _ in cls.result.teacher_topk(5)]
    assert (folder / "talk" / "classification.png").is_file()


def test_boring_video(ran):
    folder, _, ns = ran
    video = ns["video"]
    assert video.tokens.blocks[1].shape == (8, 28, 28, 192)  # torchvision's MViTv2-S, block 1
    assert video.tokens.weights.kind == "random"
    assert video.mvit.colors.shape == (28, 28, 3) and video.teacher.colors.shape == (16, 16, 3)
    fig = video.figure()
    assert shows_inline(fig) and f"{video.mvit.islands} islands" in fig.layout.title.text
    assert shows_inline(video.figure(kind="teacher"))
    png = Image.open(folder / "talk" / "boring-video-block1-frame0.png")
    assert png.size[0] > png.size[1]
