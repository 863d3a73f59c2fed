"""`--teacher NAME` and `python -m apm_viz teachers` on the command line (offline, random init)."""

import json

import pytest

from apm_viz.cli import main


def test_islands_with_a_dinov3_teacher_names_it(tmp_path, sample_path, capsys):
    out = tmp_path / "out"
    rc = main(["islands", str(sample_path), "--teacher", "dinov3-small", "--grid", "16", "--iters", "3",
               "--projection", "pca", "--out", str(out), "--offline"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "teacher dinov3-small (DINOv3, patch 16): grid 16x16 = 256x256 px" in err
    m = json.loads((out / "metrics.json").read_text())
    t = m["teacher"]
    assert (t["name"], t["timm_name"], t["family"]) == ("dinov3-small", "vit_small_patch16_dinov3.lvd1689m", "DINOv3")
    assert (t["patch"], t["grid"], t["pixels"], t["dim"]) == (16, 16, 256, 384)
    assert t["weights_source"] == "random" and t["weights_detail"] == "seed 0, download not allowed"
    assert t["mean"] == [0.485, 0.456, 0.406] and t["global_vector"] == "cls"
    man = json.loads((out / "manifest.json").read_text())
    assert man["teacher"]["name"] == "dinov3-small" and man["settings"]["teacher"] == "dinov3-small"


def test_teachers_lists_every_name_with_patch_width_and_weights(capsys):
    assert main(["teachers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines[1:] if line and not line.startswith("weights:")}
    assert len(rows) == 16
    for name, patch, width, px16 in (("dinov3-small", "16", "384", "256 px"), ("clip-l14", "14", "1024", "224 px"),
                                     ("siglip2-base", "16", "768", "256 px"), ("dinov2-giant-reg", "14", "1536", "224 px")):
        cells = rows[name].split()
        assert patch in cells and width in cells and px16 in rows[name], rows[name]
    assert all("  no  " in line for line in rows.values())  # the test session's caches are empty


def test_an_unknown_teacher_is_one_line(tmp_path, sample_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["islands", str(sample_path), "--teacher", "dinov9", "--out", str(tmp_path)])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: argument --teacher: invalid choice: 'dinov9'") and "\n" not in err


def _export(out, sample_path, *extra):
    return main(["export", str(sample_path), "--teacher", "dinov3-small", "--grid", "16", "--iters", "3",
                 "--projection", "pca", "--out", str(out), "--offline", "--engine", "matplotlib", "--formats", "png",
                 "--animations", "none", "--dpi", "40", *extra])


def test_reproduce_rebuilds_the_recorded_teacher(tmp_path, sample_path, capsys):
    out, again = tmp_path / "out", tmp_path / "again"
    assert _export(out, sample_path) == 0
    readme = (out / "chelsea-talk" / "README.txt").read_text()
    assert "Teacher:  dinov3-small (DINOv3, patch 16: grid 16x16 = 256x256 px), weights from random" in readme
    capsys.readouterr()
    assert main(["reproduce", str(out / "chelsea-talk.zip"), "--out", str(again)]) == 0
    assert "teacher dinov3-small (DINOv3, patch 16): grid 16x16 = 256x256 px" in capsys.readouterr().err
    before, after = (json.loads((d / "chelsea-talk" / "metrics.json").read_text()) for d in (out, again))
    then, now = dict(before["teacher"]), dict(after["teacher"])
    # A random-init teacher is remade as one on purpose (same seed), whatever this machine holds.
    assert (then.pop("weights_detail"), now.pop("weights_detail")) == ("seed 0, download not allowed", "seed 0, chosen")
    assert now == then and now["timm_name"] == "vit_small_patch16_dinov3.lvd1689m" and now["pixels"] == 256
    assert after["loss"] == before["loss"]


def test_reproduce_refuses_a_teacher_this_version_would_build_otherwise(tmp_path, sample_path, capsys):
    """A manifest whose teacher record says patch 14 for dinov3-small (timm's is 16) is refused before any work."""
    out = tmp_path / "out"
    assert _export(out, sample_path) == 0
    path = out / "chelsea-talk" / "manifest.json"
    man = json.loads(path.read_text())
    man["teacher"]["patch"] = 14
    man["teacher"]["timm_name"] = "vit_small_patch14_dinov2.lvd142m"
    path.write_text(json.dumps(man))
    capsys.readouterr()
    assert main(["reproduce", str(path), "--image", str(sample_path), "--out", str(tmp_path / "again")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: the bundle's teacher is not the dinov3-small this version builds: timm_name "
                   "vit_small_patch14_dinov2.lvd142m then, vit_small_patch16_dinov3.lvd1689m now; patch 14 then, 16 now")
    assert not (tmp_path / "again").exists()
