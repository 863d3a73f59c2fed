"""Slide exports of the Teacher vs APM, Latent interpolation and Boring video
pages: each figure in every format and style, the walk as GIF and MP4, and
each page's "Export for slides" expander under AppTest, its buttons' files
built through the same lazy callables a click runs."""

import io
import xml.etree.ElementTree as ET

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

from apm_viz import errors, render
from apm_viz import interpolate as itp
from apm_viz.figures import compare as compare_figs
from apm_viz.figures import interpolation as interp_figs
from apm_viz.figures import maps
from apm_viz.figures import video as video_figs
from apm_viz.figures.style import STYLES
from apm_viz.compare import Comparison, converging_config
from apm_viz.islands import ProjectionConfig, count_islands, project
from apm_viz.ttt import run_ttt
from apptest_util import new_app
from conftest import ASSETS

GRID = 16


def svg_tags(data: bytes) -> dict[str, int]:
    counts: dict[str, int] = {}
    for el in ET.fromstring(data).iter():
        tag = el.tag.rsplit("}", 1)[-1]
        counts[tag] = counts.get(tag, 0) + 1
    return counts


def check_formats(build, photos: int, cells: int, styles=tuple(STYLES)) -> dict[str, Image.Image]:
    """Write `build` in every format and style; each opens. SVG: at least `cells`
    vector shapes and no bitmap but the `photos` input images. Returns the PNGs by style."""
    pngs = {}
    for style in styles:
        for fmt in render.FORMATS:
            data = render.figure_file(build, fmt, style, dpi=60)
            if fmt == "png":
                im = Image.open(io.BytesIO(data))
                im.load()
                pngs[style] = im.convert("RGB")
            elif fmt == "svg":
                tags = svg_tags(data)
                assert tags.get("path", 0) >= cells, tags
                assert tags.get("image", 0) == photos, tags
            else:
                assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    for style, im in pngs.items():  # the style shows: the corner is the slide's background
        bg = tuple(int(STYLES[style].background[i:i + 2], 16) for i in (1, 3, 5))
        assert np.abs(np.asarray(im.getpixel((2, 2))) - bg).max() <= 2
    return pngs


def cells_shown(png: Image.Image, colors: np.ndarray, pixels: int = 20) -> int:
    """How many locations of an (h, w, 3) colour map in [0, 1] appear in the
    PNG as at least `pixels` pixels of their colour (8-bit, within 1 step)."""
    found, counts = np.unique(np.asarray(png.convert("RGB")).reshape(-1, 3), axis=0, return_counts=True)
    found = found.astype(int)
    want = np.rint(np.clip(colors.reshape(-1, 3), 0, 1) * 255).astype(int)
    near = np.abs(want[:, None, :] - found[None, :, :]).max(axis=2) <= 1  # (cells, colours in the PNG)
    return int(((near * counts[None, :]).sum(axis=1) >= pixels).sum())


def read_video(data: bytes, suffix: str, tmp_path) -> list[np.ndarray]:
    path = tmp_path / f"walk{suffix}"
    path.write_bytes(data)
    reader = imageio.get_reader(path, format="FFMPEG" if suffix == ".mp4" else "GIF")
    frames = [np.asarray(f)[..., :3] for f in reader]
    reader.close()
    return frames


# -- the figures from engine data -------------------------------------------------------

@pytest.fixture(scope="module")
def comparison(teacher_out16):
    run = run_ttt(teacher_out16, converging_config("grid", iters=10, snapshots=(0, 10), seed=61))
    return Comparison(teacher_out16, run)


@pytest.fixture(scope="module")
def walk(small_teacher, teacher_out16):
    from apm_viz.images import load_image
    from apm_viz.pipeline import encode

    coffee = encode(load_image(ASSETS / "coffee.jpg"), small_teacher, GRID)
    memory = itp.fit_memory([teacher_out16, coffee], itp.memory_config(iters=10), names=["chelsea.jpg", "coffee.jpg"])
    w = itp.walk(memory, 0, 1, n=4, extrapolate=1)  # i = -1 .. 5: 7 frames
    return memory, w, itp.walk_islands(w.fields, "pca"), itp.walk_island_counts(w.fields)


def test_teacher_vs_apm_figure_every_format(comparison, teacher_out16):
    frame, err = comparison.frame(10), comparison.error(10, "l1")

    def build(s):
        return compare_figs.teacher_vs_apm_figure(teacher_out16.image, frame.teacher_colors, frame.apm_colors, err, s, 10,
                                        "L1 over 384 channels", "dinov2-small")

    # Teacher, APM and error maps and the colour bar's 256 steps are shapes; only the photo is a bitmap.
    pngs = check_formats(build, photos=1, cells=4 * GRID * GRID)
    # The PNG shows the data: each location of the teacher's and the APM's maps as a patch of its own colour.
    for colors in (frame.teacher_colors, frame.apm_colors):
        assert cells_shown(pngs["light"], colors) >= 0.95 * GRID * GRID
    # A fixed error range (the page's "fixed over the run") keeps its colour bar and says so in the title.
    fixed = render.figure_file(lambda s: compare_figs.teacher_vs_apm_figure(teacher_out16.image, frame.teacher_colors,
                                                              frame.apm_colors, err, s, 10, "1 − cos", vmin=0.0,
                                                              vmax=float(err.max()) * 2), "png", "dark", 60)
    assert fixed != render.figure_file(build, "png", "dark", 60)


def test_interpolation_strip_every_format_with_and_without_islands(walk):
    memory, w, proj, counts = walk
    assert len(w) == 7

    def with_islands(s):
        return interp_figs.interpolation_figure(w.rgb, w.steps, w.n, s, proj.colors, counts, memory.names)

    pngs = check_formats(with_islands, photos=0, cells=2 * 7 * GRID * GRID)
    alone = check_formats(lambda s: interp_figs.interpolation_figure(w.rgb, w.steps, w.n, s), photos=0,
                          cells=7 * GRID * GRID, styles=("light",))
    # The islands row makes the strip taller, not wider.
    assert pngs["light"].size[0] == alone["light"].size[0] and pngs["light"].size[1] > 1.8 * alone["light"].size[1]
    with pytest.raises(errors.ApmVizError):
        interp_figs.interpolation_figure(w.rgb, w.steps[:3], w.n, STYLES["light"])


def test_boring_video_figure_every_format_with_and_without_apm(comparison, teacher_out16):
    cfg = ProjectionConfig(method="pca", dims=3)
    dino = project([teacher_out16.grid], cfg)
    apm_field = comparison.run.snapshots[-1].field
    apm = project([apm_field], cfg)
    pooled = teacher_out16.grid.reshape(8, 2, 8, 2, -1).mean(axis=(1, 3))  # a coarser grid, as MViTv2's differs
    mv = project([pooled], cfg)
    panels = dict(mvit=maps.Panel(mv.colors[0], "MViTv2 block 1 · frame 0", count_islands(pooled)),
                  teacher=maps.Panel(dino.colors[0], "DINOv2 teacher", count_islands(teacher_out16.grid)))
    four = check_formats(lambda s: video_figs.boring_video_figure(teacher_out16.image, style=s, title="PCA islands",
                                                          apm=maps.Panel(apm.colors[0], "APM · iteration 10",
                                                                       count_islands(apm_field)), **panels),
                         photos=1, cells=2 * GRID * GRID + 8 * 8)
    three = check_formats(lambda s: video_figs.boring_video_figure(teacher_out16.image, style=s, **panels),
                          photos=1, cells=GRID * GRID + 8 * 8, styles=("light",))
    assert four["light"].size[0] == 16 * 60 and three["light"].size[0] == 12 * 60


def test_walk_gif_and_mp4_decode_with_every_frame(walk, tmp_path):
    memory, w, proj, counts = walk
    k = len(w)
    for bounce, expected, formats in ((True, 2 * k - 2, render.ANIMATION_FORMATS), (False, k, ("mp4",))):
        for fmt in formats:
            data = interp_figs.walk_animation_bytes(w.rgb, w.steps, w.n, fmt, "light", proj.colors, memory.names,
                                           bounce=bounce)
            frames = read_video(data, f".{fmt}", tmp_path)
            # A one-way walk holds B for 1 s at 6 fps: 6 more frames in the MP4 (a GIF stretches the last one).
            extra = 6 if fmt == "mp4" and not bounce else 0
            assert len(frames) == expected + extra, (fmt, bounce, len(frames))
            assert frames[0].shape[0] % 16 == 0 and frames[0].shape[1] % 16 == 0
    # Each frame carries its own i/n stamp: frames of the walk differ, the bounce mirrors them.
    frames = interp_figs.walk_frames(w.rgb, w.steps, w.n, "dark", None, memory.names)
    assert len(frames) == 2 * k - 2 and all(f.dtype == np.uint8 for f in frames)
    assert np.array_equal(frames[1], frames[-1]) and not np.array_equal(frames[0], frames[1])
    bg = np.array([int(STYLES["dark"].background[i:i + 2], 16) for i in (1, 3, 5)])
    assert np.abs(frames[0][1, 1].astype(int) - bg).max() <= 2
    stamp_rows = slice(0, frames[0].shape[0] // 10)  # the i/n stamp sits on top
    assert not np.array_equal(frames[0][stamp_rows], frames[1][stamp_rows])


# -- the pages ---------------------------------------------------------------------------

@pytest.fixture
def deferred(monkeypatch):
    """The callables the pages' download buttons register, by file id (Streamlit's
    own MediaFileManager still registers them; this only keeps a reference)."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    made = {}
    original = MediaFileManager.add_deferred

    def add_deferred(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        file_id = original(self, data_callable, mimetype, coordinates, file_name=file_name, **kwargs)
        made[file_id] = (file_name, data_callable)
        return file_id

    monkeypatch.setattr(MediaFileManager, "add_deferred", add_deferred)
    return made


def clicked(at, made: dict, label: str) -> tuple[str, bytes]:
    """What a click on the download button `label` gives: (file name, bytes)."""
    button = next(b for b in at.get("download_button") if b.label == label)
    name, build = made[button.proto.deferred_file_id]
    return name, build()


def finish(at, page: str) -> None:
    from apptest_util import run_to_end

    run_to_end(at, page)  # the run trains in a worker process


def expander_labels(at) -> list[str]:
    return [e.label for e in at.expander]


def test_teacher_vs_apm_page_exports(deferred):
    at = new_app(grid=GRID, loss="grid", seed=61)
    at.switch_page("views/2_teacher_vs_apm.py")
    at.run()
    at.number_input(key="tva_iters").set_value(10)
    at.run()
    next(b for b in at.button if b.label.endswith("Run")).click()
    at.run()
    finish(at, "tva")
    assert not at.exception, at.exception
    assert "Export for slides" in expander_labels(at)
    name, data = clicked(at, deferred, "Teacher vs APM .png")
    assert name == "chelsea-teacher-vs-apm-it0010.png"
    assert Image.open(io.BytesIO(data)).size == (17 * 200, int(5.2 * 200))
    at.radio(key="tva_export_format").set_value("svg")
    at.radio(key="tva_export_style").set_value("dark")
    at.run()
    assert not at.exception, at.exception
    name, data = clicked(at, deferred, "Teacher vs APM .svg")
    assert name.endswith(".svg") and svg_tags(data)["path"] >= 4 * GRID * GRID and b"#121418" in data


def test_interpolation_page_exports(deferred, tmp_path):
    at = new_app(grid=GRID, seed=62)
    at.switch_page("views/3_interpolation.py")
    at.run()
    at.number_input(key="interp_iters").set_value(10)
    at.slider(key="interp_n").set_value(3)
    at.run()
    at.button(key="interp_fit_button").click()
    at.run()
    finish(at, "interp")
    assert not at.exception, at.exception
    assert "Export for slides" in expander_labels(at)
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Walk strip .png", "Walk .gif", "Walk .mp4"]  # the page's own GIF download is gone
    name, data = clicked(at, deferred, "Walk strip .png")
    assert name == "chelsea-to-coffee-walk.png" and Image.open(io.BytesIO(data)).size[0] == 16 * 200
    name, data = clicked(at, deferred, "Walk .gif")
    assert name == "chelsea-to-coffee-walk.gif"
    assert len(read_video(data, ".gif", tmp_path)) == 2 * 4 - 2  # i = 0..3, there and back
    at.checkbox(key="interp_export_islands").uncheck()
    at.radio(key="interp_export_format").set_value("pdf")
    at.run()
    assert not at.exception, at.exception
    assert clicked(at, deferred, "Walk strip .pdf")[1].startswith(b"%PDF-")


def test_boring_video_page_exports(deferred, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # random-init MViTv2, nothing downloaded
    monkeypatch.setenv("APM_VIZ_WEIGHTS_DIR", str(tmp_path / "weights"))
    at = new_app(grid=GRID, seed=63)
    at.switch_page("views/4_boring_video.py")
    at.run()
    assert not at.exception, at.exception
    assert "Export for slides" in expander_labels(at)
    name, data = clicked(at, deferred, "Boring video comparison .png")
    assert name == "chelsea-boring-video-block1-frame0.png"
    assert Image.open(io.BytesIO(data)).size == (12 * 200, 5 * 200)  # no APM run yet: three panels
    assert any("leaves it out" in c.value for c in at.caption)
