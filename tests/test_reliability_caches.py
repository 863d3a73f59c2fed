"""Weights caches: the tests see empty caches of their own, whatever the user's
machine holds, and a populated Hugging Face cache is found when it is the one
pointed at."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from conftest import CACHE_ENV, ROOT, TEST_CACHES

#: What a fresh process reports about where it looks for weights, and which
#: source a 1-block dinov2-small teacher gets with its weights left to the lookup.
PROBE = """
import json, huggingface_hub.constants as c, torch
from apm_viz.teachers import create_teacher
from apm_viz.weights import weights_folder
from apm_viz.video import cached_weights_path
t = create_teacher("dinov2-small", depth=1, seed=5)
print(json.dumps({"hub_cache": c.HF_HUB_CACHE, "torch_hub": torch.hub.get_dir(), "weights": str(weights_folder()),
                  "video": str(cached_weights_path()), "kind": t.weights.kind, "detail": t.weights.detail,
                  "cls_sum": float(t.model.cls_token.sum())}))
"""


def probe(env: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def under(path, root: Path) -> bool:
    return Path(path).resolve().is_relative_to(root.resolve())


def hf_cache_with_dinov2_small(home: Path, state_dict: dict) -> Path:
    """A Hugging Face cache as huggingface_hub writes it (refs/main -> a
    snapshot whose file links to a blob named by its sha256), holding
    `state_dict` as timm's dinov2-small model.safetensors. Returns the file."""
    from safetensors.torch import save_file

    repo = home / "hub" / "models--timm--vit_small_patch14_dinov2.lvd142m"
    (repo / "blobs").mkdir(parents=True)
    tmp = repo / "blobs" / "incoming"
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(tmp))
    blob = repo / "blobs" / hashlib.sha256(tmp.read_bytes()).hexdigest()
    tmp.rename(blob)
    commit = "1f6e4c0f1c5b3a2d9e8f7a6b5c4d3e2f1a0b9c8d"
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").symlink_to(Path("..", "..", "blobs", blob.name))
    return snapshot / "model.safetensors"


def test_this_session_looks_only_in_its_own_caches():
    import huggingface_hub.constants as hf

    from apm_viz.weights import weights_folder
    from apm_viz.video import cached_weights_path

    for name, path in CACHE_ENV.items():
        assert os.environ[name] == str(path) and under(path, TEST_CACHES)
    user_cache = Path.home() / ".cache"
    for path in (hf.HF_HUB_CACHE, torch.hub.get_dir(), weights_folder(), cached_weights_path()):
        assert under(path, TEST_CACHES) and not under(path, user_cache), path
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_a_populated_cache_is_found_only_where_it_is_pointed_at(tmp_path):
    from apm_viz.teachers import create_teacher

    sd = {k: v + 0.25 for k, v in create_teacher("dinov2-small", weights="random", depth=1, seed=9)
          .model.state_dict().items()}
    user_home = tmp_path / "user-hf-home"
    cached = hf_cache_with_dinov2_small(user_home, sd)

    # A process the tests start inherits the session's empty caches: random init.
    inherited = probe(dict(os.environ))
    assert inherited["kind"] == "random" and inherited["detail"] == "seed 5, hub unreachable"
    for key in ("hub_cache", "torch_hub", "weights", "video"):
        assert under(inherited[key], TEST_CACHES), (key, inherited[key])

    # The same process on a machine whose HF_HOME holds the weights (as a user's does): read from the cache.
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")}
    env["HF_HOME"] = str(user_home)
    found = probe(env)
    assert found["kind"] == "cache" and Path(found["detail"]) == cached
    assert under(found["hub_cache"], user_home)
    assert abs(found["cls_sum"] - float(sd["cls_token"].sum())) < 1e-4
    assert abs(found["cls_sum"] - inherited["cls_sum"]) > 1.0  # the file's weights, not the seeded init
