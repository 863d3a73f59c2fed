"""Where a model's weights come from, for every model family of the project.

One order, one network probe, one safe loader:

1. a local file the user names (`--weights FILE`, or a file in the weights
   folder chosen in the app), read only with safetensors or
   `torch.load(weights_only=True)`;
2. a file already in a cache (the Hugging Face cache, or the torch hub cache
   for a file at a URL);
3. a download, only when the source's host answers one bounded probe
   (`reachable`: about 1.5 s at most, the name lookup included);
4. random init, seeded, with a visible warning (`WeightsSource.warning`).

A model family says where its weights live online with a `HubFile` (a
Hugging Face repo) or a `UrlFile` (a URL whose file torch keeps in
$TORCH_HOME/hub/checkpoints), and calls `resolve` to walk the order; loading
into the model (and any key mapping) stays with the family. Usage:

    path, source = resolve(weights, HubFile("timm/vit_small_patch14_dinov2.lvd142m"), allow_download, seed)
    if path is not None:
        load_weights(model, path, "dinov2-small", filter_fn=...)

`HF_HUB_OFFLINE` (any value but 0/false) is the project's offline switch: it
turns every probe off, so nothing touches the network.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Optional, Union
from urllib.parse import urlparse

import torch

from .errors import ApmVizError

#: Seconds a probe may take, name lookup included.
PROBE_TIMEOUT = 1.5
HF_HOST = "huggingface.co"
OFFLINE_ENV = "HF_HUB_OFFLINE"
#: Endings of the files the weights folder lists and `resolve_weights_path` accepts.
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")

RANDOM_WARNING = (
    "Random-init teacher: no pretrained weights were found (no network, no cached or local file). "
    "Its features are a fixed random function of the pixels, so islands follow colours and edges, "
    "not objects and parts. Name a weights file or allow the download for the real thing."
)


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's weights came from.

    kind: "local" (a file the user named), "cache" (a file found in a cache),
    "hub" (downloaded now) or "random" (random init, seeded).
    detail: the file path, repo id or URL, or the reason for random init.
    """

    kind: str
    detail: str

    #: How each kind is named on screen, and what a random init means; a model
    #: family with other words (e.g. video.VideoWeightsSource) overrides these.
    KIND_NAMES: ClassVar[dict] = {"local": "local file", "cache": "Hugging Face cache", "hub": "Hugging Face hub",
                                  "random": "random init"}
    RANDOM_TEXT: ClassVar[str] = RANDOM_WARNING

    @property
    def pretrained(self) -> bool:
        return self.kind != "random"

    @property
    def label(self) -> str:
        return f"{self.KIND_NAMES.get(self.kind, self.kind)}: {self.detail}"

    @property
    def warning(self) -> Optional[str]:
        return None if self.pretrained else self.RANDOM_TEXT


# -- the network probe ------------------------------------------------------------------

def offline() -> bool:
    """True when the offline switch (HF_HUB_OFFLINE) is on."""
    return os.environ.get(OFFLINE_ENV, "0").strip() not in ("0", "", "false", "False", "FALSE", "no")


def reachable(host: str, port: int = 443, timeout: float = PROBE_TIMEOUT) -> bool:
    """True when `host` accepts a TCP connection within `timeout` seconds and
    offline mode is off.

    One attempt, bounded as a whole: `socket.getaddrinfo` ignores socket
    timeouts and, with a broken resolver, blocks for the resolver's own
    retries (5 s each by default), so the lookup and the connection run in a
    daemon thread that is abandoned when the time is up.
    """
    if offline():
        return False
    answer: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                answer.append(True)
        except OSError:
            answer.append(False)

    worker = threading.Thread(target=probe, name=f"probe-{host}", daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(answer and answer[0])


def hub_reachable(timeout: float = PROBE_TIMEOUT) -> bool:
    """`reachable` for the Hugging Face hub."""
    return reachable(HF_HOST, timeout=timeout)


# -- where weights live online, and their caches ---------------------------------------------

@dataclass(frozen=True)
class HubFile:
    """A model's weights in a Hugging Face repo.

    repo: e.g. "timm/vit_small_patch14_dinov2.lvd142m".
    filenames: the files tried, in order, in the cache and for the download.
    """

    repo: str
    filenames: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")

    host: ClassVar[str] = HF_HOST
    #: How the source is named in a random-init reason ("hub unreachable").
    where: ClassVar[str] = "hub"

    @property
    def name(self) -> str:
        return self.repo

    def cached(self) -> Optional[Path]:
        """The file in the Hugging Face cache ($HF_HOME), or None."""
        from huggingface_hub import try_to_load_from_cache

        for filename in self.filenames:
            found = try_to_load_from_cache(self.repo, filename)
            if isinstance(found, str):
                return Path(found)
        return None

    def download(self) -> Optional[Path]:
        """Fetch the first file into the Hugging Face cache; None when that fails."""
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(self.repo, self.filenames[0]))
        except Exception:
            return None


@dataclass(frozen=True)
class UrlFile:
    """A model's weights as one file at a URL, kept in the torch hub cache
    ($TORCH_HOME/hub/checkpoints/<file name>, read at call time).

    hash_prefix: checked on download (torchvision's names end in -<sha256 prefix>).
    """

    url: str
    hash_prefix: Optional[str] = None

    @property
    def host(self) -> str:
        return urlparse(self.url).hostname or ""

    @property
    def where(self) -> str:
        return self.host

    @property
    def name(self) -> str:
        return self.url

    def cache_path(self) -> Path:
        return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(self.url).path)

    def cached(self) -> Optional[Path]:
        path = self.cache_path()
        return path if path.is_file() else None

    def download(self) -> Optional[Path]:
        dst = self.cache_path()
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(self.url, str(dst), hash_prefix=self.hash_prefix, progress=False)
        except Exception:
            return None
        return dst


Remote = Union[HubFile, UrlFile]


def resolve(weights: Union[str, os.PathLike, None], remote: Optional[Remote], allow_download: bool = True,
            seed: int = 0, source: type = WeightsSource,
            found: Optional[Callable[[], Optional[Path]]] = None) -> tuple[Optional[Path], WeightsSource]:
    """Walk the order: named file, cache, download, random init.

    weights: "random" forces random init; a path names a local file (it is
        not read here: `load_weights` reads it safely); None walks the rest.
    remote: where the weights live online (None: nowhere).
    found: an extra local lookup tried before the cache (e.g. a file with the
        official name in the weights folder); its file counts as "local".
    source: the WeightsSource class whose words the result uses.
    Returns (the file to load or None, where the weights come from). With None
    the caller keeps its seeded random init.
    """
    if isinstance(weights, str) and weights == "random":
        return None, source("random", f"seed {seed}, chosen")
    if weights is not None:
        return Path(weights), source("local", str(weights))
    local = found() if found is not None else None
    if local is not None:
        return Path(local), source("local", str(local))
    if remote is None:
        return None, source("random", f"seed {seed}, no pretrained weights are published for it")
    cached = remote.cached()
    if cached is not None:
        return cached, source("cache", str(cached))
    if not allow_download:
        return None, source("random", f"seed {seed}, download not allowed")
    if not reachable(remote.host):
        return None, source("random", f"seed {seed}, {remote.where} unreachable")
    path = remote.download()
    if path is None:
        return None, source("random", f"seed {seed}, the download from {remote.where} failed")
    return path, source("hub", remote.name)


# -- reading files safely ------------------------------------------------------------------

def load_state_dict_file(path: Union[str, os.PathLike]) -> dict:
    """Read a checkpoint safely: safetensors, or torch.load with weights_only.

    Nothing a user supplies is ever unpickled into code. A checkpoint nested
    under "model", "state_dict" or "module" is unwrapped. Returns a flat
    {name: tensor} dict; anything else is a one-line ApmVizError.
    """
    path = Path(path)
    if not path.is_file():
        raise ApmVizError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # any parse failure is the file's fault
        first = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise ApmVizError(f"{path.name}: not a readable weights file ({first})") from None
    for key in ("model", "state_dict", "module"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ApmVizError(f"{path.name}: does not hold a state dict of tensors")
    return sd


def apply_state_dict(model: torch.nn.Module, sd: dict, what: str, filename: str) -> None:
    """Load `sd` into `model` strictly; mismatches become one-line errors."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} tensors of the wrong shape (e.g. {k}: {tuple(sd[k].shape)} "
                         f"vs {tuple(own[k].shape)})")
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise ApmVizError(f"{filename}: not weights for {what}: " + "; ".join(parts))
    model.load_state_dict(sd, strict=True)


def load_weights(model: torch.nn.Module, path: Union[str, os.PathLike], what: str,
                 filter_fn: Optional[Callable[[dict, torch.nn.Module], dict]] = None) -> None:
    """Read `path` safely, map its keys with `filter_fn(state_dict, model)`
    (e.g. timm's checkpoint filter for the architecture), load strictly.

    A filter that fails on a foreign file leaves the keys as they are, so the
    error names what does not fit. Raises ApmVizError, one line.
    """
    path = Path(path)
    sd = load_state_dict_file(path)
    if filter_fn is not None:
        try:
            sd = filter_fn(sd, model)
        except Exception:
            pass  # apply_state_dict names what does not fit
    apply_state_dict(model, sd, what, path.name)


# -- the weights folder ----------------------------------------------------------------------

def weights_folder() -> Path:
    """The folder the app may read weights files from ($APM_VIZ_WEIGHTS_DIR,
    default ~/.cache/apm-viz/weights)."""
    return Path(os.environ.get("APM_VIZ_WEIGHTS_DIR", Path.home() / ".cache" / "apm-viz" / "weights"))


def list_weights(folder: Optional[Path] = None) -> list[str]:
    """Weights files in the folder, as names relative to it."""
    folder = folder or weights_folder()
    if not folder.is_dir():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.suffix in WEIGHT_SUFFIXES and p.is_file())


def find_in_folder(patterns: tuple[str, ...], folder: Optional[Path] = None) -> Optional[Path]:
    """The first file of the weights folder whose name matches one of the
    glob `patterns` (e.g. a gated model's official file name), or None."""
    import fnmatch

    folder = folder or weights_folder()
    for pattern in patterns:
        for name in list_weights(folder):
            if fnmatch.fnmatch(Path(name).name, pattern):
                return folder / name
    return None


def resolve_weights_path(name: str, folder: Optional[Path] = None) -> Path:
    """A typed weights name resolved inside the weights folder; anything that
    escapes it (.., absolute paths, links out) is refused."""
    folder = (folder or weights_folder()).resolve()
    name = (name or "").strip()
    if not name:
        raise ApmVizError("no weights file named")
    try:
        path = (folder / name).resolve()
        if folder != path and folder not in path.parents:
            raise ApmVizError(f"weights must come from the weights folder {folder}")
        if path.suffix not in WEIGHT_SUFFIXES:
            raise ApmVizError(f"{path.name[:80]}: weights files end in {', '.join(WEIGHT_SUFFIXES)}")
        if not path.is_file():
            raise ApmVizError(f"{name[:80]}: no such file in the weights folder {folder}")
    except (OSError, ValueError, RuntimeError):  # NUL bytes, names too long, link loops
        raise ApmVizError(f"{name[:80]!r} is not a usable file name in the weights folder {folder}") from None
    return path
