"""The weights order (named file, weights folder, cache, download, random) and the caches it reads.

Caches are made by the tests in temporary folders, in the layout huggingface_hub
and torch.hub themselves read; nothing touches the network.
"""

import pytest
import torch

from apm_viz import weights
from apm_viz.errors import ApmVizError
from apm_viz.teachers import create_teacher
from apm_viz.weights import HubFile, UrlFile, WeightsSource, find_in_folder, resolve

REPO = "timm/vit_small_patch14_dinov2.lvd142m"


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache; put(repo, filename, tensors) adds a file the way the hub client stores it."""
    from huggingface_hub import constants

    root = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))

    def put(repo: str, filename: str, tensors: dict):
        from safetensors.torch import save_file

        folder = root / ("models--" + repo.replace("/", "--"))
        commit = "0123456789abcdef0123456789abcdef01234567"
        (folder / "refs").mkdir(parents=True, exist_ok=True)
        (folder / "refs" / "main").write_text(commit)
        snap = folder / "snapshots" / commit
        snap.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(snap / filename))
        return snap / filename

    return put


@pytest.fixture
def no_network(monkeypatch):
    """Any probe would be a failure: count them."""
    calls = []
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(weights, "reachable", lambda host, *a, **k: calls.append(host) or False)
    return calls


def test_random_is_chosen_without_looking(no_network):
    path, source = resolve("random", HubFile(REPO), seed=3)
    assert path is None and source == WeightsSource("random", "seed 3, chosen")
    assert no_network == []


def test_a_named_file_comes_first(tmp_path, hf_cache, no_network):
    hf_cache(REPO, "model.safetensors", {"w": torch.zeros(1)})
    named = tmp_path / "mine.pth"
    path, source = resolve(named, HubFile(REPO))
    assert path == named and source.kind == "local" and source.detail == str(named)
    assert no_network == []


def test_the_folder_lookup_comes_before_the_cache(tmp_path, hf_cache, no_network):
    hf_cache(REPO, "model.safetensors", {"w": torch.zeros(1)})
    official = tmp_path / "official.pth"
    path, source = resolve(None, HubFile(REPO), found=lambda: official)
    assert (path, source.kind) == (official, "local")


def test_the_cache_comes_before_the_network(hf_cache, no_network):
    stored = hf_cache(REPO, "model.safetensors", {"w": torch.zeros(1)})
    path, source = resolve(None, HubFile(REPO))
    assert path == stored and source.kind == "cache" and source.label.startswith("Hugging Face cache: ")
    assert no_network == []


def test_second_file_name_is_tried_in_the_cache(hf_cache, no_network):
    stored = hf_cache(REPO, "pytorch_model.bin", {"w": torch.zeros(1)})
    assert resolve(None, HubFile(REPO))[0] == stored


def test_without_cache_one_probe_then_random(hf_cache, no_network):
    path, source = resolve(None, HubFile(REPO), seed=5)
    assert path is None and source == WeightsSource("random", "seed 5, hub unreachable")
    assert no_network == ["huggingface.co"]
    assert source.warning == weights.RANDOM_WARNING


def test_download_not_allowed_probes_nothing(hf_cache, no_network):
    path, source = resolve(None, HubFile(REPO), allow_download=False)
    assert path is None and source.detail == "seed 0, download not allowed"
    assert no_network == []


def test_nowhere_online_is_random_without_a_probe(no_network):
    path, source = resolve(None, None, seed=1)
    assert path is None and source.kind == "random" and "no pretrained weights" in source.detail
    assert no_network == []


def test_url_file_lives_in_the_torch_hub_cache(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    remote = UrlFile("https://download.pytorch.org/models/some_model-ae3be167.pth", hash_prefix="ae3be167")
    assert remote.host == "download.pytorch.org"
    assert remote.cache_path() == tmp_path / "th" / "hub" / "checkpoints" / "some_model-ae3be167.pth"
    assert resolve(None, remote)[1].detail == "seed 0, download.pytorch.org unreachable"
    remote.cache_path().parent.mkdir(parents=True)
    torch.save({"w": torch.zeros(1)}, remote.cache_path())
    path, source = resolve(None, remote)
    assert (path, source.kind) == (remote.cache_path(), "cache")
    assert no_network == ["download.pytorch.org"]


def test_a_teacher_reads_a_populated_cache(hf_cache, no_network, small_teacher):
    """What a user who ran the app online has: the file in the Hugging Face cache."""
    sd = {k: v + 0.25 for k, v in small_teacher.model.state_dict().items()}
    hf_cache(REPO, "model.safetensors", sd)
    teacher = create_teacher("dinov2-small", depth=2)
    assert teacher.weights.kind == "cache" and teacher.weights.pretrained
    assert torch.equal(teacher.model.cls_token, sd["cls_token"])
    assert no_network == []


def test_find_in_folder_matches_official_names(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "dinov3_vits16_pretrain_lvd1689m-08c60483.pth").write_bytes(b"x")
    (tmp_path / "notes.txt").write_bytes(b"x")
    found = find_in_folder(("dinov3_vits16_pretrain_*.pth",), tmp_path)
    assert found == tmp_path / "sub" / "dinov3_vits16_pretrain_lvd1689m-08c60483.pth"
    assert find_in_folder(("dinov3_vitb16_pretrain_*.pth",), tmp_path) is None
    assert find_in_folder(("*.txt",), tmp_path) is None  # only weights files count


def test_load_weights_maps_keys_then_loads_strictly(tmp_path):
    model = torch.nn.Linear(2, 3)
    torch.save({"layer.weight": torch.ones(3, 2), "layer.bias": torch.ones(3)}, tmp_path / "w.pth")

    def strip(sd, m):
        return {k.removeprefix("layer."): v for k, v in sd.items()}

    weights.load_weights(model, tmp_path / "w.pth", "a linear layer", strip)
    assert torch.equal(model.weight, torch.ones(3, 2))
    with pytest.raises(ApmVizError, match=r"^w\.pth: not weights for a linear layer: 2 missing"):
        weights.load_weights(torch.nn.Linear(2, 3), tmp_path / "w.pth", "a linear layer")
