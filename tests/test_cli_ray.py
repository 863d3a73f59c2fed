"""`evaluate --ray local` and `films --ray local` on the command line, and addresses that cannot be reached.

Each `--ray local` run starts a Ray of its own on this machine and stops it at the end.
"""

import json
import re

import numpy as np
import pytest
import ray
from PIL import Image

from apm_viz.cli import main

FAST = ["--clip", "tiny", "--templates", "single", "--offline"]
pytestmark = pytest.mark.slow


def _folder(root, classes=("cat", "ship")):
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        Image.fromarray((np.random.RandomState(k).rand(40, 48, 3) * 255).astype(np.uint8)).save(root / c / "a.png")
    return root


def _rows(out):
    return {r["id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


def test_evaluate_ray_local_gives_the_in_process_rows(tmp_path, capsys):
    root = _folder(tmp_path / "set")
    args = ["evaluate", str(root), "--labels", "cifar10", "--corruption", "clean,contrast", "--iters", "3", *FAST]
    assert main(args + ["--out", str(tmp_path / "here")]) == 0
    capsys.readouterr()
    assert main(args + ["--out", str(tmp_path / "there"), "--ray", "local"]) == 0
    err = capsys.readouterr().err
    assert "Ray: 2 workers of 1 CPU and 0 GPU each, 4 items" in err and "warning: Random-init CLIP" in err
    assert not ray.is_initialized()  # the Ray it started is stopped
    here, there = _rows(tmp_path / "here"), _rows(tmp_path / "there")
    assert sorted(here) == sorted(there) and len(there) == 4
    for k, r in there.items():
        assert r["teacher_top5"] == here[k]["teacher_top5"] and r["apm_top5"] == here[k]["apm_top5"]
        assert r["loss_last"] == pytest.approx(here[k]["loss_last"], rel=1e-4)
    s = json.loads((tmp_path / "there" / "summary.json").read_text())
    assert s["rows"] == 4 and [c["corruption"] for c in s["cells"]] == ["clean", "contrast"]
    assert json.loads((tmp_path / "there" / "run.json").read_text())["settings"]["ttt"]["device"] == "cpu"


def test_films_ray_local_writes_every_film_and_resumes(tmp_path, capsys):
    folder = _folder(tmp_path / "pictures")
    out = tmp_path / "films"
    args = ["films", str(folder), "--out", str(out), "--grid", "16", "--iters", "2", "--projection", "pca",
            "--offline", "--ray", "local"]
    assert main(args) == 0
    rows = _rows(out)
    assert sorted(rows) == ["cat/a.png", "ship/a.png"]
    for k, r in rows.items():
        film = out / r["film"]
        assert r["film"] == f"films/{k}" and (film / "islands.gif").is_file()
        assert json.loads((film / "metrics.json").read_text())["islands"] == r["islands"]
        assert json.loads((film / "manifest.json").read_text())["image"]["sha256"] == r["image_sha256"]
    md = (out / "summary.md").read_text()
    assert md.index("| cat/a.png |") < md.index("| ship/a.png |") and "Random-init teacher" in md
    assert "2 films (0 errors)" in capsys.readouterr().out
    assert main(args) == 0  # nothing left to do: no Ray is started
    assert "2 of 2 rows already" in capsys.readouterr().err and len(_rows(out)) == 2


@pytest.mark.parametrize("address, message", [
    ("127.0.0.1:1", r"cannot reach a Ray cluster at 127\.0\.0\.1:1 \("),
    ("ray://127.0.0.1:1", r"cannot reach a Ray cluster at ray://127\.0\.0\.1:1 \("),
    ("auto", r"cannot reach a Ray cluster at [\w.]+:1 \(found by --ray auto\)"),  # Ray names the host by its IP
    ("somewhere", r"use local, auto, HOST:PORT or ray://HOST:PORT"),
])
def test_an_address_that_cannot_be_reached_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, address, message):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # what "auto" finds first
    root = _folder(tmp_path / "set", ("cat",))
    for args in (["evaluate", str(root), "--labels", "cifar10", "--iters", "1", *FAST],
                 ["films", str(root), "--grid", "16", "--iters", "1", "--offline"]):
        rc = main(args + ["--out", str(tmp_path / "o"), "--ray", address])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and re.search(message, err[0]), err
        assert not ray.is_initialized()


def test_ray_options_need_ray(tmp_path, capsys):
    root = _folder(tmp_path / "set", ("cat",))
    rc = main(["films", str(root), "--out", str(tmp_path / "o"), "--gpus-per-task", "0.5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == ["error: --cpus-per-task, --gpus-per-task and --workers need --ray"]
