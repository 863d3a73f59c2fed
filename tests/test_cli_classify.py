"""`classify` and `evaluate` on the command line, offline, with the tiny random-init CLIP."""

import json

import numpy as np
import pytest
from PIL import Image

from apm_viz.cli import main

FAST = ["--clip", "tiny", "--templates", "single", "--offline"]


def test_classify_writes_classification_json(tmp_path, sample_path, capsys):
    out = tmp_path / "c"
    rc = main(["classify", str(sample_path), "--labels", "cifar10", "--corruption", "gaussian_noise", "--severity",
               "3", "--iters", "3", "--out", str(out), *FAST])
    assert rc == 0
    d = json.loads((out / "classification.json").read_text())
    for key in ("teacher_top5", "apm_top5"):
        assert len(d[key]) == 5 and all(isinstance(lab, str) and 0 <= p <= 1 for lab, p in d[key])
        probs = [p for _, p in d[key]]
        assert probs == sorted(probs, reverse=True)
    assert [i for i, _, _ in d["per_iteration"]] == [0, 1, 2, 3]
    assert d["per_iteration"][-1][1] == d["apm_top5"][0][0]
    assert d["settings"]["ttt"]["iters"] == 3 and d["settings"]["clip"] == "tiny"
    assert d["teacher"]["weights_source"] == "random"
    assert d["corruption"]["name"] == "gaussian_noise" and d["corruption"]["severity"] == 3
    assert d["corruption"]["library"] == "imagecorruptions-imaug"
    captured = capsys.readouterr()
    assert "warning: Random-init CLIP" in captured.err and "CLIP zero-shot:" in captured.out


def test_evaluate_resumes_and_writes_summaries(tmp_path, capsys):
    root = tmp_path / "set"
    for k, c in enumerate(("cat", "ship")):
        (root / c).mkdir(parents=True)
        Image.fromarray((np.random.RandomState(k).rand(40, 40, 3) * 255).astype(np.uint8)).save(root / c / "a.png")
    (root / "ship" / "bad.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "e"
    args = ["evaluate", str(root), "--labels", "cifar10", "--corruption", "contrast", "--severity", "5", "--iters",
            "2", "--out", str(out), *FAST]
    assert main(args) == 0
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and sum("error" in r for r in rows) == 1
    s = json.loads((out / "summary.json").read_text())
    assert s["rows"] == 3 and s["errors"] == 1 and s["cells"][0]["n"] == 2
    assert "| Method | Contrast | Avg. |" in (out / "summary.md").read_text()
    capsys.readouterr()
    assert main(args) == 0  # nothing left to do
    assert len((out / "results.jsonl").read_text().splitlines()) == 3
    assert "3 of 3 rows already" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["evaluate", "{tmp}/missing", "--labels", "cifar10"], "no such data set"),
    (["evaluate", "{tmp}/set", "--labels", "cifar10"], "unknown label 'lion'"),
    (["evaluate", "{tmp}/set", "--labels", "{tmp}/labels.txt"], "labels.txt"),
    (["classify", "{tmp}/set/lion/a.png", "--labels", "cifar10", "--corruption", "smog"], "unknown corruption"),
    (["classify", "{tmp}/nothing.png", "--labels", "cifar10"], "no such image file"),
    (["classify", "{tmp}/set/lion/a.png", "--labels", "cifar10", "--severity", "9", "--corruption", "fog"],
     "severity must be 1 to 5"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    (tmp_path / "set" / "lion").mkdir(parents=True)
    Image.new("RGB", (40, 40)).save(tmp_path / "set" / "lion" / "a.png")
    (tmp_path / "labels.txt").write_bytes(b"\x00binary")
    rc = main([a.format(tmp=tmp_path) for a in args] + ["--out", str(tmp_path / "o"), *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
