"""Export for talks: figures in every format, animations, the bundle, safe names,
and `export` / `reproduce` from the command line."""

import io
import json
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
import zipfile

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

from apm_viz import errors, pipeline, render
from apm_viz import export as ex
from apm_viz.alignment import alignment, alignment_rows
from apm_viz.cli import main
from apm_viz.figures import islands as isl
from apm_viz.images import load_image
from apm_viz.islands import ProjectionConfig, count_islands, island_history, project
from apm_viz.names import safe_filename, safe_stem
from apm_viz.pipeline import IslandsResult, Settings
from apm_viz.ttt import recommended, run_ttt

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def talk(teacher_out16, sample_path):
    """A 12-iteration run on the small teacher at 16x16, as the CLI would make it."""
    settings = Settings(grid=16, weights="random", ttt=recommended("grid", iters=12),
                        projection=ProjectionConfig(dims=3, first_iters=250, next_iters=50))
    run = run_ttt(teacher_out16, settings.ttt)
    fields = [s.field for s in run.snapshots]
    result = IslandsResult(load_image(sample_path), settings, teacher_out16, run, project(fields, settings.projection),
                           list(zip(run.iterations, island_history(fields))), count_islands(teacher_out16.grid), {},
                           alignment_rows(run.iterations, fields, teacher_out16.grid))
    return isl.Talk.from_result(result, image_bytes=sample_path.read_bytes())


@pytest.fixture(scope="module")
def bundle(talk):
    return ex.bundle_files(talk, ex.ExportOptions(engine="matplotlib", dpi=80, frame=5, rotate=True, hold=2))


def svg_paths(data: bytes) -> int:
    root = ET.fromstring(data)
    assert root.tag == SVG + "svg"
    return len(root.findall(f".//{SVG}path")) + len(root.findall(f".//{SVG}use"))


def test_safe_filename_whatever_the_upload_was_called():
    assert safe_filename("../../x y?.png") == "x_y.png"
    assert safe_filename("..\\..\\win\\evil.JPG") == "evil.JPG"
    assert safe_filename("Köln Dom (1).jpeg") == "Koln_Dom_1.jpeg"
    assert safe_filename("") == "image" and safe_filename(None) == "image"
    assert safe_filename("猫.png") == "image.png"
    assert safe_filename("CON.txt") == "image_CON.txt"
    assert safe_filename(".bashrc") == "image.bashrc"
    long = safe_filename("a" * 500 + ".webp")
    assert long.endswith(".webp") and len(long) <= 80
    for hostile in ("../../x y?.png", "/etc/passwd", "a/b\\c:d*e|f\"g<h>i", "\x00\n\t.png", "..", "~/.ssh/id",
                    "名前 with spaces and ümlauts.tiff", "   ", "-rf", "x" * 1000):
        name = safe_filename(hostile)
        assert name and all(c.isascii() and (c.isalnum() or c in "._-") for c in name), (hostile, name)
        assert not name.startswith((".", "-")) and "/" not in name and ".." not in name
    assert safe_stem("../My photo (1).JPG") == "My_photo_1"


def test_bundle_holds_every_figure_format_and_opens(talk, bundle):
    its = talk.iterations
    k = talk.frame_index(5)
    stems = {"strip", f"pair_iter_{its[k]:04d}", f"tsne2d_iter_{its[k]:04d}", f"tsne3d_iter_{its[k]:04d}", "loss",
             "islands", "alignment"}
    assert {p for p in bundle if p.startswith("figures/")} == {f"figures/{s}.{f}" for s in stems for f in render.FORMATS}
    for path, data in bundle.items():
        if path.endswith(".png"):
            img = Image.open(io.BytesIO(data))
            img.load()
            name = path.split("/")[1].split("_iter")[0].split(".")[0]
            if name in isl.FIGURES and name != "strip":
                assert img.size[0] == round(isl.FIGURES[name][0][0] * 80), path
        elif path.endswith(".pdf"):
            assert data.startswith(b"%PDF-") and b"%%EOF" in data[-64:], path
        elif path.endswith(".svg"):
            assert svg_paths(data) > 0, path
    # 2-D plots are vectors: one path per point or line, no bitmap.
    n_points = 16 * 16
    for stem in (f"tsne2d_iter_{its[k]:04d}", f"tsne3d_iter_{its[k]:04d}"):
        svg = bundle[f"figures/{stem}.svg"]
        assert b"<image" not in svg and svg_paths(svg) >= n_points
    for stem in ("loss", "islands"):
        assert b"<image" not in bundle[f"figures/{stem}.svg"]
    # Island maps are one quad per location, so they stay crisp in vector files.
    assert svg_paths(bundle["figures/strip.svg"]) >= 6 * n_points - 1000


def test_plotly_figures_through_kaleido_and_the_chromium_fallback(talk, monkeypatch):
    assert render.find_chromium() is not None, "Debian's chromium is part of the test environment"
    opts = ex.ExportOptions(engine="auto", width_px=640)
    with render.kaleido_session():
        for name in isl.PLOTLY_FIGURES:
            for fmt in render.FORMATS:
                out = ex.figure_bytes(talk, name, fmt, opts)
                assert out.engine == "plotly" and not out.note
                if fmt == "png":
                    assert Image.open(io.BytesIO(out.data)).size[0] == 640
                elif fmt == "svg":
                    assert svg_paths(out.data) > 0 and b"<image" not in out.data
                else:
                    assert out.data.startswith(b"%PDF-")
    monkeypatch.setenv("BROWSER_PATH", "/nonexistent/chromium")
    assert render.find_chromium() is None
    out = ex.figure_bytes(talk, "loss", "svg", opts)
    assert out.engine == "matplotlib" and "no Chromium" in out.note and svg_paths(out.data) > 0
    with pytest.raises(render.NoChromium):
        render.plotly_to_bytes(isl.plotly_figure(talk, "loss", opts.style, opts.frame), "png", 400, 300)


def test_one_sessions_bundle_does_not_hold_back_anothers_figure(talk):
    """Two sessions share the one Chromium: while one writes a bundle, the
    other's single plotly figure is drawn between the bundle's figures and
    finishes first. The bundle waits (at its first figure, inside its kaleido
    session) until the figure is done or two minutes have passed."""
    assert render.find_chromium() is not None, "Debian's chromium is part of the test environment"
    finished, results = [], {}
    in_session, figure_done = threading.Event(), threading.Event()

    def progress(what):
        if not in_session.is_set():
            in_session.set()
            figure_done.wait(120)

    def bundle():
        opts = ex.ExportOptions(engine="auto", dpi=40, formats=("png",), animations=())
        results["bundle"] = ex.bundle_files(talk, opts, progress)
        finished.append("bundle")

    def figure():
        in_session.wait(120)
        results["figure"] = ex.figure_bytes(talk, "loss", "png", ex.ExportOptions(engine="auto", width_px=320))
        finished.append("figure")
        figure_done.set()

    threads = [threading.Thread(target=bundle), threading.Thread(target=figure)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert finished == ["figure", "bundle"]
    assert results["figure"].engine == "plotly" and not results["figure"].note
    manifest = json.loads(results["bundle"]["manifest.json"])
    assert manifest["export"]["engines"]["loss"] == "plotly" and not manifest["export"]["notes"]


def read_video(data: bytes, suffix: str, tmp_path) -> list:
    path = tmp_path / f"v{suffix}"
    path.write_bytes(data)
    reader = imageio.get_reader(path, format="FFMPEG" if suffix == ".mp4" else "GIF")
    frames = [np.asarray(f)[..., :3] for f in reader]
    reader.close()
    return frames


def test_animations_decode_with_stamps(talk, bundle, tmp_path):
    n = len(talk.iterations)
    for name in isl.ANIMATIONS:
        gif = read_video(bundle[f"animations/{name}.gif"], ".gif", tmp_path)
        mp4 = read_video(bundle[f"animations/{name}.mp4"], ".mp4", tmp_path)
        # hold=2 frames per snapshot; a GIF merges repeated frames into one longer one,
        # the rotating 3-D view has none to merge.
        assert len(gif) == (2 * n if name == "tsne3d" else n)
        assert len(mp4) >= 2 * n  # plus the last frame held
        assert gif[0].shape == mp4[0].shape and gif[0].shape[0] % 16 == 0 and gif[0].shape[1] % 16 == 0
        # The stamp (iteration, loss) changes from the first snapshot to the last.
        assert np.abs(gif[0].astype(int) - gif[-1].astype(int)).mean() > 1.0


def test_animation_writer_takes_any_rgb_frames(tmp_path):
    frames = [np.full((37, 53, 3), v, np.uint8) for v in (0, 80, 160, 240)]
    g = read_video(render.animation_to_bytes(frames, "gif", fps=4, hold_last=0), ".gif", tmp_path)
    m = read_video(render.animation_to_bytes(frames, "mp4", fps=4, hold_last=0), ".mp4", tmp_path)
    assert len(g) == 4 and len(m) == 4 and m[0].shape == (48, 64, 3)
    assert [int(f[24, 32].mean()) for f in g] == [0, 80, 160, 240]
    assert np.allclose([f[24, 32].mean() for f in m], [0, 80, 160, 240], atol=6)
    with pytest.raises(errors.ApmVizError):
        render.animation_to_bytes([], "gif")
    with pytest.raises(errors.ApmVizError):
        render.animation_to_bytes(frames, "avi")


def test_bundle_zip_manifest_metrics_readme(talk, bundle):
    data = ex.zip_bytes(bundle, ex.bundle_name(talk))
    z = zipfile.ZipFile(io.BytesIO(data))
    names = set(z.namelist())
    assert all(n.startswith("chelsea-talk/") for n in names)
    for f in ("manifest.json", "metrics.csv", "metrics.json", "README.txt", "input/chelsea.jpg",
              "animations/islands.gif", "animations/islands.mp4", "animations/tsne3d.gif", "animations/tsne3d.mp4"):
        assert f"chelsea-talk/{f}" in names
    man = json.loads(z.read("chelsea-talk/manifest.json"))
    assert man["image"]["sha256"] == talk.result.image.sha256 == man["input_file_sha256"]
    assert man["seed"] == 0 and man["settings"]["grid"] == 16 and man["settings"]["ttt"]["iters"] == 12
    assert man["teacher"]["weights_source"] == "random" and "torch" in man["versions"]
    assert man["export"]["options"]["frame"] == 5 and man["export"]["options"]["rotate"] is True
    assert set(man["export"]["files"]) == {n for n in bundle if n.startswith(("figures/", "animations/"))}
    rows = list(__import__("csv").DictReader(io.StringIO(z.read("chelsea-talk/metrics.csv").decode())))
    assert [int(r["iteration"]) for r in rows] == list(range(13))
    assert [float(r["loss"]) for r in rows] == [v for _, v in talk.result.run.losses]
    assert {int(r["iteration"]): int(r["islands"]) for r in rows if r["islands"]} == dict(talk.result.islands)
    snaps = {s.iteration: s.field for s in talk.result.run.snapshots}
    for r in rows:  # the alignment at the snapshots, as the measure gives it for each field
        if r["islands"]:
            a = alignment(snaps[int(r["iteration"])], talk.result.teacher.grid)
            assert float(r["teacher_share"]) == pytest.approx(a.teacher_share, rel=1e-5)
            assert float(r["position_share"]) == pytest.approx(a.position_share, rel=1e-5)
        else:
            assert r["teacher_share"] == r["position_share"] == ""
    met = json.loads(z.read("chelsea-talk/metrics.json"))
    assert [row[0] for row in met["alignment"]] == talk.iterations
    assert all(0 <= t <= 1 and 0 <= p <= 1 for _, t, p in met["alignment"])
    readme = z.read("chelsea-talk/README.txt").decode()
    assert "python -m apm_viz reproduce chelsea-talk.zip --out DIR" in readme and "seed 0" in readme
    assert f"teacher share {met['alignment'][-1][1]:.2f}" in readme and "Recipe:   aligned" in readme
    assert ex.zip_bytes(bundle, ex.bundle_name(talk)) == data  # fixed dates: same files, same zip


def test_cli_export_then_reproduce(tmp_path, sample_path):
    src = tmp_path / "my cat ?.jpg"  # named as an upload might be
    src.write_bytes(sample_path.read_bytes())
    out = tmp_path / "out"
    rc = main(["export", str(src), "--out", str(out), "--grid", "16", "--iters", "20", "--offline", "--loss", "grid",
               "--engine", "matplotlib", "--formats", "png,svg", "--animations", "gif", "--dpi", "60"])
    assert rc == 0
    zpath = out / "my_cat-talk.zip"
    assert zpath.is_file() and (out / "my_cat-talk" / "manifest.json").is_file()
    before = json.loads((out / "my_cat-talk" / "metrics.json").read_text())
    assert before["weights_source"] == "random" and len(before["loss"]) == 21

    again = tmp_path / "again"
    assert main(["reproduce", str(zpath), "--out", str(again)]) == 0
    after = json.loads((again / "my_cat-talk" / "metrics.json").read_text())
    assert after["loss"] == before["loss"] and after["islands"] == before["islands"]
    assert after["teacher_islands"] == before["teacher_islands"]
    made = sorted(p.relative_to(again / "my_cat-talk").as_posix() for p in (again / "my_cat-talk").rglob("*"))
    first = sorted(p.relative_to(out / "my_cat-talk").as_posix() for p in (out / "my_cat-talk").rglob("*"))
    assert made == first
    for f in ("figures/strip.png", "figures/strip.svg", "figures/tsne3d_iter_0020.svg", "animations/islands.gif"):
        assert (again / "my_cat-talk" / f).read_bytes() == (out / "my_cat-talk" / f).read_bytes(), f


def test_cli_export_with_the_authors_recipe_reproduces_it(tmp_path, sample_path):
    out = tmp_path / "out"
    rc = main(["export", str(sample_path), "--out", str(out), "--grid", "16", "--iters", "3", "--offline",
               "--recipe", "authors", "--projection", "pca", "--components", "1", "--engine", "matplotlib",
               "--formats", "png", "--animations", "gif", "--dpi", "40"])
    assert rc == 0
    folder = out / "chelsea-talk"
    man = json.loads((folder / "manifest.json").read_text())
    ttt = man["settings"]["ttt"]
    assert man["recipe"] == "authors" and man["settings"]["recipe"] == "authors"
    assert (ttt["pooling"], ttt["init_std"], ttt["lr_step"], ttt["local_patch"]) == ("attention", 0.01, 200, False)
    assert man["settings"]["projection"]["dims"] == 1
    # Grayscale maps have no 3-D scatter; the bundle says so.
    assert not list(folder.glob("figures/tsne3d*")) and not (folder / "animations" / "tsne3d.gif").exists()
    assert any("1-D" in n for n in man["export"]["notes"])
    strip = np.asarray(Image.open(folder / "figures" / "strip.png").convert("RGB")).astype(int)
    assert (folder / "figures" / "alignment.png").is_file() and strip.size
    again = tmp_path / "again"
    assert main(["reproduce", str(out / "chelsea-talk.zip"), "--out", str(again)]) == 0
    after = json.loads((again / "chelsea-talk" / "manifest.json").read_text())
    assert after["recipe"] == "authors"
    assert all(after["settings"][k] == man["settings"][k] for k in ("ttt", "projection", "recipe", "grid"))


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "apm_viz", *args], capture_output=True, text=True, timeout=300)


def test_export_and_reproduce_bad_input_exit_2(tmp_path, capsys):
    notes = tmp_path / "notes.zip"
    notes.write_text("not a zip")
    bare = tmp_path / "manifest.json"
    bare.write_text(json.dumps({"image": {"name": "gone.jpg", "sha256": "0" * 64}, "settings": {"grid": 16}}))
    cases = [("reproduce", str(tmp_path / "missing.zip"), "--out", str(tmp_path)),
             ("reproduce", str(notes), "--out", str(tmp_path)),
             ("reproduce", str(bare), "--out", str(tmp_path)),
             ("export", str(tmp_path / "missing.jpg"), "--out", str(tmp_path)),
             ("export", str(notes), "--out", str(tmp_path), "--formats", "png,bmp")]
    for args in cases[:2]:  # as a user runs it: a fresh process, nothing but one line
        r = run_cli(*args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (args, r.stderr)
    for args in cases[2:]:
        assert main(list(args)) == 2, args
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, lines)


def test_app_film_manifest_reproduces(sample_path):
    """What the app exports (a film trained step by step) recomputes to the same metrics."""
    from apm_viz.film import IslandsFilm
    from apm_viz.pipeline import compute, encode, metrics
    from apm_viz.teachers import create_teacher

    image = load_image(sample_path)
    teacher = create_teacher("dinov2-small", weights="random", seed=0)
    config = recommended("grid", iters=10, seed=0)
    film = IslandsFilm(encode(image, teacher, 16), config, seed=0)
    while not film.done:
        film.advance(budget=5.0)
    settings = Settings(grid=16, weights="random", ttt=config, projection=film.live["3d"].config)
    app_result = pipeline.result_from_film(film, image, settings, 0.8, 4, film.live_projection("3d"))
    bundle = ex.Bundle(json.loads(json.dumps(pipeline.manifest(app_result))), metrics(app_result))
    again = compute(image, ex.reproduce_settings(bundle))
    assert ex.compare_metrics(bundle.metrics, metrics(again)) == []
    assert np.allclose(np.concatenate(again.projection.coords), np.concatenate(app_result.projection.coords))
