"""Dataset evaluation: layouts, the per-item function, resume, and the summary's arithmetic."""

import json
import math

import numpy as np
import pytest
from PIL import Image

from apm_viz.classify import recipe
from apm_viz.corruptions import parse
from apm_viz.dataset import scan
from apm_viz.errors import ApmVizError
from apm_viz.evaluate import (RESULTS, EvalSettings, ResultsFile, evaluate_item, items, plan, run_in_process,
                              worker_for)
from apm_viz.labels import load_labels
from apm_viz.summary import markdown, mcnemar_p, summarize, wilson

SETTINGS = EvalSettings(clip="tiny", labels="cifar10", templates="single", ttt=recipe("laptop", iters=2))
CLASSES = ("cat", "dog", "ship")


def _picture(seed, size=(72, 60)):
    return Image.fromarray((np.random.RandomState(seed).rand(size[1], size[0], 3) * 255).astype(np.uint8))


@pytest.fixture
def folder(tmp_path):
    """3 classes x 2 pictures, and one damaged file among the dogs."""
    root = tmp_path / "set"
    for k, c in enumerate(CLASSES):
        (root / c).mkdir(parents=True)
        for i in range(2):
            _picture(10 * k + i).save(root / c / f"{i}.png")
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "dog" / "notes.txt").write_text("not an image, not listed")
    return root


def test_folder_layout_and_labels(folder):
    ds = scan(folder, load_labels("cifar10"))
    assert ds.layout == "folder" and len(ds.entries) == 7
    assert {e.label for e in ds.entries} == set(CLASSES)
    assert all(e.label_index == load_labels("cifar10").index(e.label) for e in ds.entries)
    its = items(ds, ["clean", "pixelate"], [5])
    assert len(its) == 14 and len({i.id for i in its}) == 14
    assert "cat/0.png|pixelate|5" in {i.id for i in its} and "cat/0.png|clean|0" in {i.id for i in its}


def test_bad_datasets_are_one_line(tmp_path, folder):
    labels = load_labels("cifar10")
    with pytest.raises(ApmVizError, match="no such data set"):
        scan(tmp_path / "missing", labels)
    (folder / "dgo").mkdir()
    with pytest.raises(ApmVizError, match="unknown label 'dgo'"):
        scan(folder, labels)
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(ApmVizError, match="no images"):
        scan(tmp_path / "empty", labels)
    wn = tmp_path / "wnids"
    for w in ("n01440764", "n01443537"):
        (wn / w).mkdir(parents=True)
        _picture(1).save(wn / w / "a.png")
    with pytest.raises(ApmVizError, match="WordNet ids"):
        scan(wn, load_labels("imagenet"))


def test_csv_layout(tmp_path, folder):
    csv = tmp_path / "list.csv"
    csv.write_text("path,label\nset/cat/0.png,cat\nset/ship/1.png,Ship\nset/cat/missing.png,cat\n")
    ds = scan(csv, load_labels("cifar10"))
    assert ds.layout == "csv" and [e.label for e in ds.entries] == ["cat", "ship", "cat"]
    bad = tmp_path / "bad.csv"
    bad.write_text("set/cat/0.png,lion\n")
    with pytest.raises(ApmVizError, match="unknown label 'lion'"):
        scan(bad, load_labels("cifar10"))


def test_imagenet_c_tree_is_read_not_corrupted_again(tmp_path):
    root = tmp_path / "imagenet-c"
    for c, s in (("fog", 5), ("fog", 3), ("pixelate", 5)):
        (root / c / str(s) / "cat").mkdir(parents=True)
        _picture(3, (224, 224)).save(root / c / str(s) / "cat" / "x.png")
    ds, its = plan(root, SETTINGS, ["fog"], [5])
    assert ds.layout == "imagenet-c" and [i.id for i in its] == ["fog/5/cat/x.png|fog|5"]
    assert len(plan(root, SETTINGS, parse("all"), [3, 5])[1]) == 3
    worker = worker_for(SETTINGS)
    row = evaluate_item(its[0], SETTINGS, worker)
    assert row["applied"]["library"] == "ImageNet-C files" and "not corrupted again" in row["applied"]["note"]
    # The same file taken as a clean image gives the same zero-shot prediction: nothing was applied.
    clean = items(scan(root / "fog" / "5", load_labels("cifar10")), ["clean"], [5])[0]
    again = evaluate_item(clean, SETTINGS, worker)
    assert again["teacher_top5"] == row["teacher_top5"] and again["teacher_p_true"] == row["teacher_p_true"]


def test_summary_arithmetic_by_hand():
    rows = []
    # clean: 5 rows; CLIP right on 0,1; APM right on 1,2,3; one error row.
    for i in range(5):
        rows.append({"id": f"{i}|clean|0", "corruption": "clean", "severity": 0, "label_index": 0,
                     "teacher_correct": i in (0, 1), "apm_correct": i in (1, 2, 3),
                     "teacher_top1": 0 if i in (0, 1) else 1, "apm_top1": 0 if i in (1, 2, 3) else 1,
                     "teacher_top5": [0, 1] if i < 4 else [1, 2], "apm_top5": [1, 0], })
    rows.append({"id": "x|clean|0", "corruption": "clean", "severity": 0, "error": "damaged"})
    for i in range(4):  # fog 5: CLIP 1 of 4, APM 2 of 4; snow 5: 2 of 4 and 2 of 4
        rows.append({"id": f"{i}|fog|5", "corruption": "fog", "severity": 5, "label_index": 0,
                     "teacher_correct": i == 0, "apm_correct": i < 2, "teacher_top1": 0 if i == 0 else 2,
                     "apm_top1": 0 if i < 2 else 2, "teacher_top5": [2], "apm_top5": [2]})
        rows.append({"id": f"{i}|snow|5", "corruption": "snow", "severity": 5, "label_index": 0,
                     "teacher_correct": i < 2, "apm_correct": i >= 2, "teacher_top1": 0 if i < 2 else 3,
                     "apm_top1": 0 if i >= 2 else 3, "teacher_top5": [0], "apm_top5": [0]})
    s = summarize(rows)
    cells = {(c["corruption"], c["severity"]): c for c in s["cells"]}
    clean = cells[("clean", 0)]
    assert (clean["n"], clean["errors"], clean["teacher"]["correct"], clean["apm"]["correct"]) == (5, 1, 2, 3)
    assert clean["teacher"]["top1"] == 0.4 and clean["apm"]["top1"] == 0.6
    assert clean["only_apm"] == 2 and clean["only_teacher"] == 1 and clean["changed"] == 3
    assert clean["teacher_top5"] == 4 / 5 and clean["apm_top5"] == 1.0
    assert cells[("fog", 5)]["teacher"]["top1"] == 0.25 and cells[("fog", 5)]["apm"]["top1"] == 0.5
    assert cells[("snow", 5)]["only_apm"] == 2 and cells[("snow", 5)]["only_teacher"] == 2
    sev5 = next(t for t in s["tables"] if t["severity"] == 5)
    assert sev5["columns"] == ["snow", "fog"]  # ImageNet-C's order: snow, frost, fog
    assert sev5["average"]["teacher"] == pytest.approx((0.25 + 0.5) / 2)
    assert sev5["average"]["apm"] == pytest.approx((0.5 + 0.5) / 2)
    assert s["rows"] == 14 and s["errors"] == 1
    # Wilson: p = 2/5, z = 1.96 -> centre (0.4 + 1.92/5) / (1 + 3.84/5), by hand.
    z = 1.959963984540054
    centre = (0.4 + z * z / 10) / (1 + z * z / 5)
    half = z * math.sqrt(0.4 * 0.6 / 5 + z * z / 100) / (1 + z * z / 5)
    assert clean["teacher"]["ci95"] == pytest.approx([centre - half, centre + half])
    md = markdown(s)
    assert "| CLIP zero-shot | 40.0 |" in md and "| APM (TTT) | 60.0 |" in md
    assert "| Method | Snow | Fog | Avg. |" in md and "| CLIP zero-shot | 50.0 | 25.0 | 37.5 |" in md


def test_wilson_and_mcnemar_known_values():
    assert wilson(0, 10)[0] == 0.0 and wilson(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)
    assert mcnemar_p(2, 0) == 0.5 and mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(1, 9) == pytest.approx(2 * 11 / 1024)


def test_evaluate_resume_and_error_rows(tmp_path, folder):
    out = tmp_path / "out"
    seen = []

    def stop_after_three(done, total, row):
        if row is not None:
            seen.append(row["id"])
            if len(seen) == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_in_process(folder, SETTINGS, out, ["clean", "pixelate"], [5], progress=stop_after_three)
    lines = (out / RESULTS).read_text().splitlines()
    assert len(lines) == 3 and [json.loads(x)["id"] for x in lines] == seen
    assert json.loads((out / "summary.json").read_text())["rows"] == 3  # written on the way out

    # A crash mid-line: the cut line is dropped and recomputed.
    with open(out / RESULTS, "a") as f:
        f.write('{"id": "cut')
    later = []
    summary = run_in_process(folder, SETTINGS, out, ["clean", "pixelate"], [5],
                             progress=lambda d, t, r: later.append((d, t, r and r["id"])))
    assert later[0] == (3, 14, None)  # started from the 3 rows kept
    assert len(later) == 1 + 11 and not set(seen) & {r for _, _, r in later[1:]}
    rows = [json.loads(x) for x in (out / RESULTS).read_text().splitlines()]
    assert len(rows) == 14 and len({r["id"] for r in rows}) == 14
    assert (out / RESULTS).read_text().splitlines()[:3] == lines  # the first rows are untouched
    errors = [r for r in rows if "error" in r]
    assert {r["id"] for r in errors} == {"dog/broken.jpg|clean|0", "dog/broken.jpg|pixelate|5"}
    assert all("\n" not in r["error"] and "broken.jpg" in r["error"] for r in errors)
    assert summary["rows"] == 14 and summary["errors"] == 2
    ok = [r for r in rows if "error" not in r]
    for c in ("clean", "pixelate"):
        mine = [r for r in ok if r["corruption"] == c]
        cell = next(x for x in summary["cells"] if x["corruption"] == c)
        assert cell["n"] == len(mine) == 6
        assert cell["teacher"]["correct"] == sum(r["teacher_correct"] for r in mine)
        assert cell["apm"]["correct"] == sum(r["apm_correct"] for r in mine)
    for r in ok:
        assert r["iterations"] == 2 and len(r["apm_top5"]) == 5 and r["apm_top1"] == r["apm_top5"][0]
        assert r["teacher_correct"] == (r["teacher_top1"] == r["label_index"])
    pix = next(r for r in ok if r["corruption"] == "pixelate")
    assert pix["applied"]["function"] == "imagecorruptions.corruptions.pixelate" and pix["applied"]["severity"] == 5

    # A third run has nothing left to do; other settings in the same folder are refused.
    again = []
    run_in_process(folder, SETTINGS, out, ["clean", "pixelate"], [5], progress=lambda d, t, r: again.append(r))
    assert again == [None]
    other = EvalSettings(clip="tiny", labels="cifar10", templates="single", ttt=recipe("laptop", iters=3))
    with pytest.raises(ApmVizError, match="other settings"):
        run_in_process(folder, other, out, ["clean"], [5])
    text = (out / "summary.md").read_text()
    assert "| Method | Clean |" in text and "| Method | Pixelate | Avg. |" in text and "Random-init CLIP" in text


def test_results_file_ignores_duplicates_and_sorts(tmp_path):
    rf = ResultsFile(tmp_path)
    for i in ("b", "a", "b"):
        rf.append({"id": i, "v": 1 if i == "b" else 2})
    assert [r["id"] for r in rf.rows()] == ["a", "b"]
    assert len((tmp_path / RESULTS).read_text().splitlines()) == 2
    assert ResultsFile(tmp_path).done == {"a", "b"}


def test_wordnet_folders_map_by_sorted_index(tmp_path):
    """The official ImageNet folders are the 1000 WordNet ids; sorted, they are the class index."""
    root = tmp_path / "val"
    ids = [f"n{9000000 + 7 * i:08d}" for i in range(1000)]
    for w in ids:
        (root / w).mkdir(parents=True)
    for k in (0, 2, 999):
        _picture(k).save(root / ids[k] / "img.png")
    labels = load_labels("imagenet")
    ds = scan(root, labels)
    assert [(e.label_index, e.label) for e in ds.entries] == [(0, "tench"), (2, labels.names[2]),
                                                              (999, "toilet paper")]


def test_item_function_is_pure(folder):
    """The same item and settings give the same row, in a fresh worker too (a distributed runner
    relies on it)."""
    from apm_viz import evaluate

    ds, its = plan(folder, SETTINGS, ["impulse_noise"], [3])
    item = next(i for i in its if i.rel == "cat/1.png")
    first = evaluate_item(item, SETTINGS, worker_for(SETTINGS))
    evaluate._WORKERS.clear()  # as a new process would: the CLIP and its text rows built again
    second = evaluate_item(item, SETTINGS, worker_for(SETTINGS))
    for row in (first, second):
        row.pop("seconds")
    assert first == second and first["id"] == "cat/1.png|impulse_noise|3"
