"""The CLIP teacher (open_clip, random init from its configs), label sets and templates."""

import os

import numpy as np
import pytest
import torch

from apm_viz.clip import CLIP_MODELS, HUB_FILES, ClipWeightsSource, _remote, create_clip
from apm_viz.errors import ApmVizError
from apm_viz.labels import CIFAR10, LabelSet, keep_label_file, load_labels, prompts, templates


@pytest.fixture(scope="module")
def tiny():
    return create_clip("tiny", seed=0)


def _image(seed=0, size=224):
    return np.random.RandomState(seed).rand(size, size, 3).astype(np.float32)


# -- labels and templates -------------------------------------------------------

def test_builtin_label_sets_come_from_open_clip():
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    imagenet = load_labels("imagenet")
    assert len(imagenet) == 1000 and imagenet.names == tuple(IMAGENET_CLASSNAMES)
    assert imagenet.names[0] == "tench" and imagenet.names[999] == "toilet paper"
    cifar = load_labels("cifar10")
    assert cifar.names[0] == "airplane" and cifar.names[9] == "truck" and len(cifar) == 10
    assert cifar.index("Automobile") == 1 and cifar.index(" truck ") == 9


def test_templates_are_open_clips_prompts():
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

    for kind, lambdas in (("openai", OPENAI_IMAGENET_TEMPLATES), ("simple", SIMPLE_IMAGENET_TEMPLATES)):
        ours = templates(kind)
        assert len(ours) == len(lambdas)
        assert all(t.count("{}") == 1 for t in ours)
        for name in ("goldfish", "T-shirt {odd}"):  # braces in a class name are kept as they are
            assert prompts(name, kind) == [t(name) for t in lambdas]
    assert len(templates("openai")) == 80
    assert prompts("cat", "single") == ["a photo of a cat."]
    with pytest.raises(ApmVizError):
        templates("fancy")


def test_label_file(tmp_path):
    good = tmp_path / "mine.txt"
    good.write_text("# my classes\nred apple\n\ngreen pear\n  plum  \n")
    labels = load_labels(good)
    assert labels.names == ("red apple", "green pear", "plum") and labels.name == "mine.txt"


@pytest.mark.parametrize("content", [b"only one\n", b"", b"a\nb\nA\n", b"\x00\x01\x02binary", b"\xff\xfe\xfa bad"])
def test_bad_label_files_give_one_line(tmp_path, content):
    bad = tmp_path / "labels.txt"
    bad.write_bytes(content)
    with pytest.raises(ApmVizError) as err:
        load_labels(bad)
    assert "\n" not in str(err.value) and "labels.txt" in str(err.value)


def test_an_uploaded_label_file_is_kept_by_its_content_and_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("APM_VIZ_CACHE_DIR", str(tmp_path))
    data = "red apple\ngreen pear\n".encode()
    path = keep_label_file(data, "../my fruit.txt")
    assert path.parent.parent == tmp_path / "labels" and path.name == "my_fruit.txt"
    assert path.read_bytes() == data and load_labels(path).names == ("red apple", "green pear")
    assert keep_label_file(data, "../my fruit.txt") == path  # the same content, the same file
    assert keep_label_file(b"plum\npear\n", "../my fruit.txt") != path
    with pytest.raises(ApmVizError) as err:
        keep_label_file(b"only one\n", "few.txt")
    assert "\n" not in str(err.value) and "few.txt" in str(err.value)


def test_missing_label_file_and_unknown_label(tmp_path):
    with pytest.raises(ApmVizError, match="neither cifar10, imagenet nor a text file"):
        load_labels(tmp_path / "nope.txt")
    with pytest.raises(ApmVizError, match="unknown label 'dgo'"):
        LabelSet("cifar10", CIFAR10).index("dgo")


# -- the image tower --------------------------------------------------------------

def test_tiny_clip_is_random_and_says_so(tiny):
    assert tiny.weights.kind == "random" and "meaningless" in tiny.weights.warning
    assert tiny.size == 224 and tiny.patch == 16 and tiny.grid == 14
    assert tiny.dim == 64


def test_embedding_is_open_clips_encode_image(tiny):
    view = tiny.encode(_image())
    x = torch.from_numpy(_image()).permute(2, 0, 1).unsqueeze(0)
    x = (x - tiny.mean) / tiny.std
    with torch.no_grad():
        expected = tiny.model.encode_image(x)[0].numpy()
    np.testing.assert_allclose(view.embedding, expected, rtol=1e-5, atol=1e-6)
    assert view.teacher.grid.shape == (14, 14, 64)
    assert view.teacher.image.shape == (14 * 16, 14 * 16, 3)  # what the APM folds, at the tower's patch 16
    assert view.teacher.patch == 16 and view.teacher.normalisation.mean == (0.48145466, 0.4578275, 0.40821073)
    assert view.teacher.pooled_rgb.shape == (14, 14, 3)


def test_patch_grid_is_the_towers_tokens_through_its_projection():
    clip = create_clip("tiny", seed=3)  # a model of this test's own: the flag below changes it
    clip.model.visual.output_tokens = True
    x = (torch.from_numpy(_image(1)).permute(2, 0, 1).unsqueeze(0) - clip.mean) / clip.std
    with torch.no_grad():
        pooled, tokens = clip.model.visual(x)
        expected = (tokens[0] @ clip.model.visual.proj).reshape(14, 14, -1).numpy()
    clip.model.visual.output_tokens = False
    np.testing.assert_allclose(clip.encode(_image(1)).teacher.grid, expected, rtol=1e-4, atol=1e-5)


def test_wrong_input_size_is_one_line(tiny):
    with pytest.raises(ApmVizError, match="224x224"):
        tiny.encode(_image(size=196))


# -- the text tower -----------------------------------------------------------------

def test_classifier_is_open_clips_zero_shot_classifier(tiny):
    import open_clip
    from open_clip.zero_shot_classifier import build_zero_shot_classifier
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    labels = LabelSet("two", ("cat", "dog"))
    ours = tiny.classifier(labels, "openai", cache=False)
    with torch.no_grad():
        ref = build_zero_shot_classifier(tiny.model, open_clip.get_tokenizer("ViT-B-16"), ["cat", "dog"],
                                         OPENAI_IMAGENET_TEMPLATES, num_classes_per_batch=None).T.numpy()
    np.testing.assert_allclose(ours.weights, ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ours.weights, axis=1), 1.0, rtol=1e-5)
    assert ours.logit_scale == pytest.approx(float(tiny.model.logit_scale.detach().exp()))


def test_classifier_cache_reads_back_the_same_rows(tiny):
    labels = LabelSet("three", ("red", "green", "blue"))
    first = tiny.classifier(labels, "single")
    second = tiny.classifier(labels, "single")
    assert not first.cached and second.cached
    np.testing.assert_array_equal(first.weights, second.weights)
    other = tiny.classifier(labels, "simple")  # another template set is another key
    assert not other.cached


def test_probabilities_are_softmax_of_scaled_cosines(tiny):
    labels = load_labels("cifar10")
    cls = tiny.classifier(labels, "single")
    e = tiny.encode(_image(2)).embedding
    cos = torch.nn.functional.cosine_similarity(torch.tensor(e)[None], torch.tensor(cls.weights), dim=1)
    expected = torch.softmax(cos * cls.logit_scale, dim=0).numpy()
    np.testing.assert_allclose(cls.probabilities(e), expected, rtol=1e-4, atol=1e-6)


# -- weights ------------------------------------------------------------------------

def test_local_weights_file_loads_and_a_code_file_is_refused(tmp_path, tiny):
    from safetensors.torch import save_file

    other = create_clip("tiny", seed=7)
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in other.model.state_dict().items()}, str(path))
    loaded = create_clip("tiny", weights=path, seed=0)
    assert loaded.weights.kind == "local" and loaded.weights.warning is None
    np.testing.assert_allclose(loaded.encode(_image()).embedding, other.encode(_image()).embedding, rtol=1e-6)
    assert not np.allclose(loaded.encode(_image()).embedding, tiny.encode(_image()).embedding)

    evil = tmp_path / "evil.pth"
    torch.save({"model": {"x": torch.zeros(1)}, "code": os.system}, str(evil))
    with pytest.raises(ApmVizError) as err:
        create_clip("tiny", weights=evil)
    assert "\n" not in str(err.value)
    wrong = tmp_path / "wrong.safetensors"
    save_file({"visual.proj": torch.zeros(3, 3)}, str(wrong))
    with pytest.raises(ApmVizError, match="not weights for"):
        create_clip("tiny", weights=wrong)


def test_weights_order_cache_then_random_offline(tmp_path):
    """The Hugging Face cache is found where open_clip's tag says; offline, no cache means random."""
    from huggingface_hub import constants

    from apm_viz.weights import HubFile, resolve

    spec = CLIP_MODELS["vit-b-16-openai"]
    assert _remote(spec) == HubFile("timm/vit_base_patch16_clip_224.openai", HUB_FILES)  # open_clip's tag
    assert _remote(CLIP_MODELS["vit-l-14-laion2b"]).repo == "laion/CLIP-ViT-L-14-laion2B-s32B-b82K"
    assert _remote(CLIP_MODELS["tiny"]) is None
    path, source = resolve(None, _remote(spec), allow_download=True, seed=0, source=ClipWeightsSource)
    assert path is None and source.kind == "random" and "hub unreachable" in source.detail
    repo = constants.HF_HUB_CACHE + "/models--timm--vit_base_patch16_clip_224.openai"
    snap = os.path.join(repo, "snapshots", "abc123")
    os.makedirs(snap)
    os.makedirs(os.path.join(repo, "refs"))
    try:
        with open(os.path.join(repo, "refs", "main"), "w") as f:
            f.write("abc123")
        with open(os.path.join(snap, "open_clip_model.safetensors"), "wb") as f:
            f.write(b"not loaded by this test")
        path, source = resolve(None, _remote(spec), allow_download=True, seed=0, source=ClipWeightsSource)
        assert source.kind == "cache" and path.name == "open_clip_model.safetensors" and "abc123" in str(path)
    finally:
        import shutil

        shutil.rmtree(repo)


def test_unknown_clip_is_one_line():
    with pytest.raises(ApmVizError, match="unknown CLIP 'vit-z'"):
        create_clip("vit-z")
