"""Teachers: DINOv2 through timm turns an image into patch features.

Weight sources, in order: a local file the user names; the Hugging Face cache;
the hub (only when it answers a short probe); random init. Every result says
where its weights came from, because islands from a random-init teacher mean
something else (see `WeightsSource.warning`).
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Optional, Union

import numpy as np
import torch

from .errors import ApmVizError
from .images import pool_to_grid
from .seeding import seeded

#: Short names -> timm model names (DINOv2 ViT-?/14, with and without registers).
DINOV2 = {
    "dinov2-small": "vit_small_patch14_dinov2.lvd142m",
    "dinov2-base": "vit_base_patch14_dinov2.lvd142m",
    "dinov2-large": "vit_large_patch14_dinov2.lvd142m",
    "dinov2-giant": "vit_giant_patch14_dinov2.lvd142m",
    "dinov2-small-reg": "vit_small_patch14_reg4_dinov2.lvd142m",
    "dinov2-base-reg": "vit_base_patch14_reg4_dinov2.lvd142m",
    "dinov2-large-reg": "vit_large_patch14_reg4_dinov2.lvd142m",
    "dinov2-giant-reg": "vit_giant_patch14_reg4_dinov2.lvd142m",
}
PATCH = 14

RANDOM_WARNING = (
    "Random-init teacher: no pretrained weights were found (no network, no cached or local file). "
    "Its features are a fixed random function of the pixels, so islands follow colours and edges, "
    "not objects and parts. Name a weights file or allow the download for the real thing."
)


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's weights came from.

    kind: "local" (a file the user named), "cache" (Hugging Face cache),
    "hub" (downloaded now) or "random" (random init, seeded).
    detail: the file path, repo id, or the reason for random init.
    """

    kind: str
    detail: str

    @property
    def pretrained(self) -> bool:
        return self.kind != "random"

    #: How each kind is named on screen, and what a random init means; a model
    #: family with other sources (e.g. video.VideoWeightsSource) overrides these.
    KIND_NAMES: ClassVar[dict] = {"local": "local file", "cache": "Hugging Face cache", "hub": "Hugging Face hub",
                                  "random": "random init"}
    RANDOM_TEXT: ClassVar[str] = RANDOM_WARNING

    @property
    def label(self) -> str:
        return f"{self.KIND_NAMES.get(self.kind, self.kind)}: {self.detail}"

    @property
    def warning(self) -> Optional[str]:
        return None if self.pretrained else self.RANDOM_TEXT


@dataclass
class TeacherOutput:
    """A teacher's view of one image.

    image: (S, S, 3) float32 in [0, 1], the square input the teacher saw.
    grid: (h, w, D) float32 patch tokens (prefix tokens removed).
    token: (D,) float32 global (CLS) token.
    pooled_rgb: (h, w, 3) the image average-pooled to the grid.
    """

    image: np.ndarray
    grid: np.ndarray
    token: np.ndarray
    pooled_rgb: np.ndarray
    model: str
    weights: WeightsSource

    @property
    def grid_size(self) -> int:
        return self.grid.shape[0]


def hub_reachable(timeout: float = 1.5) -> bool:
    """True when the Hugging Face hub answers quickly and offline mode is off.

    The whole probe, name lookup included, gives up after about `timeout`
    seconds: getaddrinfo ignores socket timeouts and, with an unreachable DNS
    server, blocks for the resolver's own retries (5 s each by default).
    """
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    answer: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection(("huggingface.co", 443), timeout=timeout):
                answer.append(True)
        except OSError:
            answer.append(False)

    worker = threading.Thread(target=probe, name="hub-probe", daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(answer and answer[0])


def load_state_dict_file(path: Union[str, os.PathLike]) -> dict:
    """Read a checkpoint safely: safetensors, or torch.load with weights_only.

    Nothing a user supplies is ever unpickled. Returns a flat state dict.
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


class Teacher:
    """A DINOv2 ViT-?/14 from timm, ready to encode images.

    encode(image (S, S, 3) in [0, 1]) -> TeacherOutput with an (S/14, S/14, D) grid.
    """

    def __init__(self, name: str, model: torch.nn.Module, weights: WeightsSource, device: str = "cpu"):
        self.name = name
        self.model = model.eval().to(device)
        self.weights = weights
        self.device = device
        cfg = getattr(model, "pretrained_cfg", {}) or {}
        self.mean = torch.tensor(cfg.get("mean", (0.485, 0.456, 0.406)), dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg.get("std", (0.229, 0.224, 0.225)), dtype=torch.float32).view(1, 3, 1, 1)

    @property
    def dim(self) -> int:
        return self.model.embed_dim

    @torch.inference_mode()
    def encode(self, image: np.ndarray) -> TeacherOutput:
        s = image.shape[0]
        if image.shape != (s, s, 3) or s % PATCH:
            raise ApmVizError(f"teacher input must be square with a side divisible by {PATCH}, got {image.shape}")
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).unsqueeze(0).float()
        x = ((x - self.mean) / self.std).to(self.device)
        tokens = self.model.forward_features(x)  # (1, prefix + h*w, D), final norm applied
        prefix = self.model.num_prefix_tokens
        g = s // PATCH
        grid = tokens[0, prefix:].reshape(g, g, -1).float().cpu().numpy()
        token = tokens[0, 0].float().cpu().numpy()
        return TeacherOutput(image=image.astype(np.float32), grid=grid, token=token,
                             pooled_rgb=pool_to_grid(image, g).astype(np.float32),
                             model=self.name, weights=self.weights)


def _build(timm_name: str, seed: int, **kwargs) -> torch.nn.Module:
    import timm

    with seeded(seed):
        return timm.create_model(timm_name, pretrained=False, dynamic_img_size=True, **kwargs)


def create_teacher(name: str = "dinov2-small", weights: Union[str, os.PathLike, None] = None,
                   allow_download: bool = True, seed: int = 0, device: str = "cpu", **model_kwargs) -> Teacher:
    """Build a DINOv2 teacher and resolve its weights.

    name: a key of `DINOV2` or a timm model name.
    weights: "random" forces random init; a path loads that file (safetensors
        or a torch checkpoint, timm or original DINOv2 key names); None tries
        the Hugging Face cache, then the hub if `allow_download` and reachable,
        then falls back to random init (seeded by `seed`).
    model_kwargs: passed to timm (tests use e.g. depth=2 for a small model).
    """
    timm_name = DINOV2.get(name, name)
    try:
        model = _build(timm_name, seed, **model_kwargs)
    except RuntimeError as err:
        raise ApmVizError(f"unknown teacher {name!r}: {str(err).splitlines()[0]}") from None
    if weights == "random":
        return Teacher(name, model, WeightsSource("random", f"seed {seed}, chosen"), device)
    if weights is not None:
        path = Path(weights)
        sd = load_state_dict_file(path)
        from timm.models.vision_transformer import checkpoint_filter_fn

        try:
            sd = checkpoint_filter_fn(sd, model)
        except Exception:
            pass  # apply_state_dict names what does not fit
        apply_state_dict(model, sd, name, path.name)
        return Teacher(name, model, WeightsSource("local", str(path)), device)
    cached = _cached_file(model)
    if cached is not None:
        apply_state_dict(model, load_state_dict_file(cached), name, Path(cached).name)
        return Teacher(name, model, WeightsSource("cache", str(cached)), device)
    if allow_download and hub_reachable():
        path = _download(model)
        if path is not None:
            apply_state_dict(model, load_state_dict_file(path), name, Path(path).name)
            return Teacher(name, model, WeightsSource("hub", _hub_id(model)), device)
    reason = "hub unreachable" if allow_download else "download not allowed"
    return Teacher(name, model, WeightsSource("random", f"seed {seed}, {reason}"), device)


def _hub_id(model: torch.nn.Module) -> Optional[str]:
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    return cfg.get("hf_hub_id")


def _cached_file(model: torch.nn.Module) -> Optional[str]:
    repo = _hub_id(model)
    if not repo:
        return None
    from huggingface_hub import try_to_load_from_cache

    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str):
            return found
    return None


def _download(model: torch.nn.Module) -> Optional[str]:
    repo = _hub_id(model)
    if not repo:
        return None
    from huggingface_hub import hf_hub_download

    try:
        return hf_hub_download(repo, "model.safetensors")
    except Exception:
        return None


WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


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
