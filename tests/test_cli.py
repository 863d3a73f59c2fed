import json
import subprocess
import sys

from PIL import Image

from apm_viz.cli import main


def test_islands_end_to_end(tmp_path, sample_path):
    out = tmp_path / "out"
    rc = main(["islands", str(sample_path), "--out", str(out), "--iters", "30", "--grid", "16", "--offline"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["weights_source"] == "random"
    assert m["loss"][0][0] == 0 and m["loss"][-1][0] == 30 and len(m["loss"]) == 31
    assert m["loss"][-1][1] < m["loss"][0][1]
    iters = [i for i, _ in m["islands"]]
    assert iters[0] == 0 and iters[-1] == 30
    assert isinstance(m["teacher_islands"], int)
    assert m["settings"]["ttt"]["iters"] == 30 and m["settings"]["grid"] == 16
    for i in iters:
        frame = Image.open(out / "frames" / f"iter_{i:04d}.png")
        assert frame.size[0] > frame.size[1] > 100  # input beside island map
    gif = Image.open(out / "islands.gif")
    assert getattr(gif, "n_frames", 1) == len(iters)
    man = json.loads((out / "manifest.json").read_text())
    assert man["seed"] == 0 and len(man["image"]["sha256"]) == 64
    assert "torch" in man["versions"] and "timm" in man["versions"]
    # The default: token supervision with the figure's query, and its alignment per snapshot.
    assert man["recipe"] == "aligned" and m["settings"]["ttt"]["loss"] == "token"
    assert m["settings"]["ttt"]["local_patch"] is True
    assert [row[0] for row in m["alignment"]] == iters and all(len(row) == 3 for row in m["alignment"])


def test_islands_prints_counts_in_words(tmp_path, sample_path):
    r = run_cli("islands", str(sample_path), "--out", str(tmp_path / "o"), "--iters", "2", "--grid", "16",
                "--offline", "--projection", "pca")
    assert r.returncode == 0, r.stderr
    teacher = json.loads((tmp_path / "o" / "metrics.json").read_text())["teacher_islands"]
    assert f"teacher {teacher} island{'' if teacher == 1 else 's'};" in r.stdout
    assert "alignment at iteration 2: teacher share" in r.stdout
    assert "[T | I_xy | p_xy] also reads each location's own pixels" in r.stderr


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "apm_viz", *args], capture_output=True, text=True, timeout=300)


def test_bad_input_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("this is text, not a picture")
    for args in ([str(bad), "--out", str(tmp_path / "o")], [str(tmp_path / "missing.jpg"), "--out", str(tmp_path)],
                 ["--out", str(tmp_path)]):
        r = run_cli("islands", *args)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
        assert "Traceback" not in r.stderr
