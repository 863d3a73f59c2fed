"""The Test-time classification page under Streamlit's AppTest: settings, a run on
the worker with the tiny random-init CLIP, both top-5s, scrubbing, bad input.

The expected top-5 is CLIP's zero-shot computed here with the engine's parts
(the same tiny CLIP, the same picture), outside the page and the worker."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from apm_viz.classify import prepare
from apm_viz.clip import create_clip
from apm_viz.images import load_image
from apm_viz.labels import load_labels

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGE = "views/6_classification.py"
HEADLINE = "Random weights: these predictions are chance and mean nothing."
ITERS = 8
WAIT = 600


def open_page(**widgets) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240)
    at.session_state["grid"] = 16
    at.run()
    at.switch_page(PAGE)
    for key, value in widgets.items():
        at.session_state[key] = value
    at.run()
    return at


def tiny_page(**widgets) -> AppTest:
    settings = dict(cls_clip="tiny", cls_weights_mode="Random init", cls_templates="single", cls_iters_laptop=ITERS)
    settings.update(widgets)
    return open_page(**settings)


def handles(at: AppTest) -> dict:
    return dict(at.session_state["runs_classify"]) if "runs_classify" in at.session_state else {}


def run(at: AppTest) -> None:
    """Press Run; the run trains in a worker process: wait for it, then draw the page again."""
    next(b for b in at.button if b.label == "Run").click()
    at.run()
    for h in handles(at).values():
        if h.live:
            assert h.manager.wait(h, WAIT), "the run did not finish"
    at.run()


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def text(at: AppTest) -> str:
    return " ".join(str(e.value) for kind in ("warning", "caption", "markdown", "error", "info")
                    for e in getattr(at, kind))


def zero_shot_top5(sample_path, corruption: str, severity: int, seed: int) -> list[str]:
    clip = create_clip("tiny", "random", seed=seed)
    labels = load_labels("cifar10")
    rows = clip.classifier(labels, "single", cache=False).weights
    picture, _ = prepare(load_image(sample_path), 224, corruption, severity, seed)
    emb = torch.tensor(clip.encode(picture).embedding, dtype=torch.float64)
    cos = torch.nn.functional.cosine_similarity(emb[None], torch.tensor(rows, dtype=torch.float64), dim=1)
    p = torch.softmax(cos * clip.logit_scale, dim=0).numpy()
    return [labels.names[i] for i in sorted(range(len(p)), key=lambda i: -p[i])[:5]]


@pytest.fixture(scope="module")
def finished():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        at = tiny_page(cls_corruption="pixelate", cls_severity=3)
        run(at)
        yield at


def test_page_before_a_run_explains_and_offers_the_settings():
    at = open_page()
    assert not at.exception, at.exception
    assert at.title[0].value == "Test-time classification"
    assert at.radio(key="cls_labels").value == "cifar10"
    assert at.selectbox(key="cls_clip").value == "vit-b-16-openai"
    assert "tiny random CLIP (2 blocks, for tests)" in at.selectbox(key="cls_clip").options
    assert at.radio(key="cls_recipe").value == "laptop" and at.number_input(key="cls_iters_laptop").value == 250
    assert at.selectbox(key="cls_corruption").options[0] == "clean"
    assert len(at.selectbox(key="cls_corruption").options) == 16
    assert "Press **Run**" in text(at)
    assert not next(b for b in at.button if b.label == "Run").disabled
    at.radio(key="cls_weights_mode").set_value("Random init")
    at.run()
    assert HEADLINE in text(at)


def test_a_run_shows_both_top5s_and_says_they_are_chance(finished, sample_path):
    at = finished
    assert not at.exception, at.exception
    (h,) = handles(at).values()
    assert h.status == "done", h.message
    r = h.view.result
    assert r.run.status == "done" and r.iterations == ITERS + 1
    assert r.applied.name == "pixelate" and r.applied.severity == 3
    assert HEADLINE in text(at)
    figs = charts(at)
    topk = next(f for f in figs if any("CLIP zero-shot" == a.get("text") for a in f["layout"]["annotations"]))
    clip_bars, apm_bars = topk["data"][0], topk["data"][1]
    assert clip_bars["y"][::-1] == zero_shot_top5(sample_path, "pixelate", 3, 0)
    assert apm_bars["y"][::-1] == [lab for lab, _ in r.apm_topk(5, ITERS)]
    titles = [a["text"] for a in topk["layout"]["annotations"]]
    assert f"APM at iteration {ITERS}" in titles
    assert any("probability" in json.dumps(f["layout"].get("yaxis", {})) for f in figs)  # the curves
    assert any("islands" in json.dumps(f["layout"].get("title", {})) for f in figs)  # the field's map
    captions = [c for im in at.get("image") for c in im.captions]
    assert "clean" in captions and "pixelate 3" in captions


def test_scrubbing_shows_the_apm_at_that_iteration(finished):
    at = finished
    at.slider(key="cls_iter").set_value(0)
    at.run()
    assert not at.exception
    (h,) = handles(at).values()
    topk = next(f for f in charts(at) if any(a.get("text") == "APM at iteration 0"
                                                 for a in f["layout"]["annotations"]))
    assert topk["data"][1]["y"][::-1] == [lab for lab, _ in h.view.result.apm_topk(5, 0)]
    assert np.isclose(topk["data"][1]["x"][-1], h.view.result.apm_topk(5, 0)[0][1])


def test_slides_of_the_run_are_offered(finished):
    labels = [b.label for b in finished.get("download_button")]
    assert any(lab.startswith("Top-5 slide") for lab in labels) and any(lab.startswith("Probabilities")
                                                                         for lab in labels)


def test_a_missing_weights_file_is_one_line_and_run_waits():
    at = tiny_page(cls_weights_mode="Local file")
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "\n" not in errors[0] and "No weights files" in errors[0]
    assert next(b for b in at.button if b.label == "Run").disabled
    at.radio(key="cls_weights_mode").set_value("Random init")
    at.run()
    assert not at.error and not next(b for b in at.button if b.label == "Run").disabled
