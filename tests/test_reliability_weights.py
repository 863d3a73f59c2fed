"""Missing or wrong teacher weights, untrusted checkpoints, the weights folder.

Checkpoints are only read through safetensors or `torch.load(weights_only=True)`:
a pickle that runs code when unpickled must be refused, not executed.
The app's side (previous teacher kept, message on screen) is in
test_reliability_app.py.
"""

import inspect
import os
import pickle
import sys
import threading

import pytest
import torch

from apm_viz.errors import ApmVizError
from apm_viz.teachers import create_teacher
from apm_viz.weights import hub_reachable, load_state_dict_file, resolve_weights_path

# -- an audit hook that sees (and can block) the process's network calls ---------

_WATCH: dict = {"fn": None}


def _audit(event, args):
    fn = _WATCH["fn"]
    if fn is not None:
        fn(event, args)


sys.addaudithook(_audit)


class Payload:
    """Unpickling this creates `marker`: a stand-in for any code a hostile checkpoint runs."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def hostile_files(folder, marker) -> dict:
    """name -> path of checkpoints whose unpickling would create `marker`."""
    evil = Payload(marker)
    files = {}
    files["zip.pth"] = folder / "zip.pth"
    torch.save({"model": {"cls_token": evil}}, files["zip.pth"])
    files["bare.pt"] = folder / "bare.pt"
    torch.save(evil, files["bare.pt"])
    files["legacy.bin"] = folder / "legacy.bin"
    torch.save({"w": evil}, files["legacy.bin"], _use_new_zipfile_serialization=False)
    files["raw-pickle.pth"] = folder / "raw-pickle.pth"
    files["raw-pickle.pth"].write_bytes(pickle.dumps({"w": evil}))
    files["pickle.safetensors"] = folder / "pickle.safetensors"
    files["pickle.safetensors"].write_bytes(pickle.dumps(evil))
    return files


def test_the_payload_is_live(tmp_path):
    # Guard against a test that passes because the payload never worked.
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


@pytest.mark.parametrize("name", ["zip.pth", "bare.pt", "legacy.bin", "raw-pickle.pth", "pickle.safetensors"])
def test_hostile_pickle_is_refused_not_executed(tmp_path, name):
    marker = tmp_path / "ran"
    path = hostile_files(tmp_path, marker)[name]
    with pytest.raises(ApmVizError) as err:
        load_state_dict_file(path)
    assert not marker.exists()
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{name}:")
    with pytest.raises(ApmVizError):
        create_teacher("dinov2-small", weights=path, depth=2)
    assert not marker.exists()


@pytest.fixture(scope="module")
def wrong_files(tmp_path_factory, small_teacher):
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("wrong")
    good = {k: v.contiguous() for k, v in small_teacher.model.state_dict().items()}
    save_file(good, str(d / "good.safetensors"))
    files = {
        "corrupt.pth": os.urandom(4096),
        "empty.safetensors": b"",
        "truncated.safetensors": (d / "good.safetensors").read_bytes()[:5000],
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
    # Another model: DINOv2-base (768 wide) for a small (384 wide) teacher.
    torch.save(create_teacher("dinov2-base", weights="random", depth=2).model.state_dict(), d / "base.pth")
    # The right model at the wrong size: 3 blocks for a 2-block teacher.
    torch.save(create_teacher("dinov2-small", weights="random", depth=3).model.state_dict(), d / "deeper.pth")
    torch.save({"epoch": 3, "lr": 0.1}, d / "no-tensors.pth")
    return d


@pytest.mark.parametrize("name, says", [
    ("corrupt.pth", "not a readable weights file"),
    ("empty.safetensors", "not a readable weights file"),
    ("truncated.safetensors", "not a readable weights file"),
    ("base.pth", "not weights for dinov2-small: "),
    ("deeper.pth", "unexpected"),
    ("no-tensors.pth", "does not hold a state dict"),
])
def test_wrong_weights_give_one_clear_line(wrong_files, name, says):
    with pytest.raises(ApmVizError) as err:
        create_teacher("dinov2-small", weights=wrong_files / name, depth=2)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(name) and says in msg and len(msg) < 400


def test_wrong_shape_message_names_a_tensor(wrong_files):
    with pytest.raises(ApmVizError, match=r"wrong shape \(e\.g\. \S+: \(\d+, \d+, 768\) vs \(\d+, \d+, 384\)\)"):
        create_teacher("dinov2-small", weights=wrong_files / "base.pth", depth=2)


def test_good_file_beside_them_loads(wrong_files, small_teacher):
    teacher = create_teacher("dinov2-small", weights=wrong_files / "good.safetensors", depth=2)
    assert teacher.weights.kind == "local"
    assert torch.equal(teacher.model.pos_embed, small_teacher.model.pos_embed)


# -- no network -------------------------------------------------------------------

def test_offline_fallback_touches_no_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls = []
    _WATCH["fn"] = lambda e, a: calls.append(e) if e in ("socket.connect", "socket.getaddrinfo") else None
    try:
        teacher = create_teacher("dinov2-small", depth=1)
    finally:
        _WATCH["fn"] = None
    assert calls == []
    assert teacher.weights.kind == "random" and "hub unreachable" in teacher.weights.detail
    assert "Random-init teacher" in teacher.weights.warning


def test_hub_probe_is_one_bounded_attempt(monkeypatch):
    """Without HF_HUB_OFFLINE the hub gets one short probe. Here every lookup is
    blocked (so the test never reaches the network) and held open: the probe
    must give up without waiting for the stuck name lookup."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    release, lookups, finished = threading.Event(), [], []

    def stuck_dns(event, args):
        if event == "socket.getaddrinfo":
            lookups.append(args[0])
            release.wait(30)
            finished.append(args[0])
            raise OSError("network blocked by the test")
        if event == "socket.connect":
            raise OSError("network blocked by the test")

    _WATCH["fn"] = stuck_dns
    try:
        answer = hub_reachable(timeout=0.2)
        still_stuck = not finished
    finally:
        release.set()
        _WATCH["fn"] = None
    assert answer is False
    assert lookups == ["huggingface.co"]
    assert still_stuck  # returned while the lookup was still hanging
    assert inspect.signature(hub_reachable).parameters["timeout"].default <= 2


# -- the weights folder -------------------------------------------------------------

@pytest.fixture
def folder(tmp_path):
    inside = tmp_path / "weights"
    (inside / "sub").mkdir(parents=True)
    (inside / "ok.pth").write_bytes(b"x")
    (inside / "sub" / "deep.safetensors").write_bytes(b"x")
    (tmp_path / "secret.pth").write_bytes(b"x")
    (inside / "link-out.pth").symlink_to(tmp_path / "secret.pth")
    (inside / "link-in.pth").symlink_to(inside / "ok.pth")
    (inside / "sub-out").symlink_to(tmp_path, target_is_directory=True)
    (inside / "loop.pth").symlink_to(inside / "loop.pth")
    return inside


@pytest.mark.parametrize("name", ["ok.pth", "sub/deep.safetensors", "link-in.pth", "./sub/../ok.pth"])
def test_names_inside_the_folder_resolve(folder, name):
    path = resolve_weights_path(name, folder)
    assert path.is_file() and folder.resolve() in path.parents


@pytest.mark.parametrize("name", [
    "../secret.pth", "sub/../../secret.pth", "link-out.pth", "sub-out/secret.pth", "/etc/passwd",
    "ABSOLUTE_SECRET", "~/secret.pth", "missing.pth", "ok.txt", "", "   ", "loop.pth", "a\0b.pth",
    "x" * 5000 + ".pth", "a/" * 3000 + "b.pth",
])
def test_names_outside_or_unusable_are_refused(folder, name):
    if name == "ABSOLUTE_SECRET":
        name = str(folder.parent / "secret.pth")
    with pytest.raises(ApmVizError) as err:
        resolve_weights_path(name, folder)
    msg = str(err.value)
    assert "\n" not in msg and len(msg) < 400


def test_absolute_path_inside_the_folder_is_allowed(folder):
    assert resolve_weights_path(str(folder / "ok.pth"), folder) == (folder / "ok.pth").resolve()


def test_default_folder_comes_from_the_environment(folder, monkeypatch):
    monkeypatch.setenv("APM_VIZ_WEIGHTS_DIR", str(folder))
    assert resolve_weights_path("ok.pth") == (folder / "ok.pth").resolve()
    with pytest.raises(ApmVizError, match="weights folder"):
        resolve_weights_path("../secret.pth")
