"""The one network probe every weights source uses, against a resolver that hangs.

A broken resolver blocks `socket.getaddrinfo` for the resolver's own retries
(5 s each by default), whatever socket timeout is set. Here every lookup
blocks until the test ends and then fails. A bounded probe gives up on it; a
probe that waits never returns while the test runs, so the check is "it
returned at all, and the lookup was still hanging", not a stopwatch (WAIT
only keeps a failing test from hanging the suite). Nothing here reaches the
network: every lookup is held, every connection refused.
"""

import socket
import threading

import pytest

from apm_viz import video, weights
from apm_viz.teachers import create_teacher

HOLD = 900.0  # a stuck lookup blocks this long, or until the test ends
WAIT = 240.0  # how long a test waits for the code under test to come back


@pytest.fixture
def stuck_resolver(monkeypatch, tmp_path):
    """getaddrinfo blocks; connections are refused; caches are empty. Yields (lookups, finished)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("APM_VIZ_WEIGHTS_DIR", str(tmp_path / "weights"))
    release, lookups, finished = threading.Event(), [], []

    def getaddrinfo(host, *args, **kwargs):
        lookups.append(host)
        release.wait(HOLD)
        finished.append(host)
        raise socket.gaierror("lookups are blocked by the test")

    def connect(self, *args, **kwargs):
        raise OSError("connections are blocked by the test")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    yield lookups, finished
    release.set()


def _in_thread(fn):
    """fn() in a daemon thread, waited for at most WAIT seconds; its result, or
    a failure when it did not come back (it waited for the lookup)."""
    out = []
    worker = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    worker.start()
    worker.join(WAIT)
    assert out, "it waited for the hanging name lookup"
    return out[0]


@pytest.mark.parametrize("host", ["huggingface.co", "download.pytorch.org"])
def test_probe_returns_while_the_lookup_still_hangs(stuck_resolver, host):
    lookups, finished = stuck_resolver
    assert _in_thread(lambda: weights.reachable(host, timeout=0.3)) is False
    assert lookups == [host]  # one attempt
    assert finished == []  # it did not wait for the lookup


def test_teacher_falls_back_to_random_while_the_lookup_hangs(stuck_resolver):
    lookups, finished = stuck_resolver
    teacher = _in_thread(lambda: create_teacher("dinov2-small", depth=1))
    assert lookups == ["huggingface.co"] and finished == []
    assert teacher.weights.detail == "seed 0, hub unreachable"


def test_boring_video_falls_back_to_random_while_the_lookup_hangs(stuck_resolver):
    """The Boring video page's weights: before the one probe, its own probe waited
    for the lookup (this test failed on it: the lookup had finished)."""
    lookups, finished = stuck_resolver
    model = _in_thread(lambda: video.create_boring_video(seed=0))
    assert lookups == ["download.pytorch.org"] and finished == []
    assert model.weights.detail == "seed 0, download.pytorch.org unreachable"


def test_offline_switch_skips_every_probe(stuck_resolver, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lookups, _ = stuck_resolver
    assert weights.reachable("huggingface.co", timeout=0.3) is False
    assert weights.reachable("download.pytorch.org", timeout=0.3) is False
    assert lookups == []


@pytest.mark.parametrize("value, off", [("1", True), ("true", True), ("0", False), ("", False), ("false", False)])
def test_offline_switch_values(monkeypatch, value, off):
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert weights.offline() is off
