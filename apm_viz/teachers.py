"""Teachers: image backbones from timm that turn an image into patch features.

One registry entry per teacher (`TEACHERS`), grouped in families (`FAMILIES`):

| family | names | patch | prefix tokens | global vector |
|---|---|---|---|---|
| DINOv2 | dinov2-small/base/large/giant | 14 | 1 (class) | class token |
| DINOv2 with registers | dinov2-*-reg | 14 | 5 (class + 4 registers) | class token |
| DINOv3 | dinov3-small/small-plus/base/large | 16 | 5 (class + 4 registers) | class token |
| SigLIP 2 | siglip2-base/large | 16 | 0 | the attention-pooling (MAP) head |
| CLIP image tower | clip-b16, clip-l14 | 16 / 14 | 1 (class) | class token (before the projection) |

Patch size, width, prefix tokens and the input normalisation are read from
the timm model and its `pretrained_cfg`, never from constants of ours; the
table above is what they are in timm 1.0.31 (tests/test_teacher_registry.py
checks them against timm). Every teacher runs at any square size that is a
multiple of its patch (`dynamic_img_size`): grid g means g * patch pixels.

Weight sources, in order (`weights.resolve`): a local file the user names;
a file with the publisher's own name in the weights folder (DINOv3's gated
checkpoints, DINOv2's originals); the Hugging Face cache; the hub when it
answers the bounded probe; random init. Files are mapped to timm's keys by
timm's own checkpoint filter for the architecture, so Meta's DINOv3 and
DINOv2 files load as they are downloaded. Every result says where its
weights came from, because islands from a random-init teacher mean something
else (see `WeightsSource.warning`).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Literal, Optional, Union

import numpy as np
import torch

from .errors import ApmVizError
from .images import pool_to_grid
from .seeding import seeded
from .weights import HubFile, WeightsSource, find_in_folder, load_weights, resolve

GlobalVector = Literal["cls", "map"]


@dataclass(frozen=True)
class Family:
    """What a group of teachers has in common.

    global_vector: "cls" (the class token after the final norm) or "map"
        (the output of the model's attention-pooling head, for families
        without a class token).
    about: one line on the family and its weights, shown in listings.
    """

    name: str
    global_vector: GlobalVector
    about: str


FAMILIES = {
    "dinov2": Family("DINOv2", "cls", "self-supervised (Meta); weights on the Hugging Face hub"),
    "dinov2-reg": Family("DINOv2 with registers", "cls",
                         "DINOv2 with 4 register tokens (cleaner patch features); weights on the Hugging Face hub"),
    "dinov3": Family("DINOv3", "cls",
                     "self-supervised (Meta), class token as upstream (timm pools the average by default); "
                     "weights are gated: accept Meta's licence, download the official .pth and put it in "
                     "the weights folder, or name it"),
    "siglip2": Family("SigLIP 2", "map",
                      "image tower of a sigmoid-loss image-text model (Google); no class token, the global "
                      "vector is the attention-pooling (MAP) head's output"),
    "clip": Family("CLIP image tower", "cls",
                   "image tower of OpenAI's CLIP; the global vector is the class token after the final norm, "
                   "before the projection into the joint image-text space"),
}


@dataclass(frozen=True)
class TeacherConfig:
    """One teacher of the registry.

    name: the short name (`--teacher NAME`, the app's list).
    timm_name: the timm model name with its pretrained tag.
    family: a key of `FAMILIES`.
    official_files: glob patterns of the publisher's own checkpoint names,
        looked for in the weights folder before the caches.
    """

    name: str
    timm_name: str
    family: str
    official_files: tuple[str, ...] = ()

    @property
    def family_info(self) -> Family:
        return FAMILIES[self.family]


def _registry(*configs: TeacherConfig) -> dict[str, TeacherConfig]:
    return {c.name: c for c in configs}


TEACHERS = _registry(
    TeacherConfig("dinov2-small", "vit_small_patch14_dinov2.lvd142m", "dinov2", ("dinov2_vits14_pretrain.pth",)),
    TeacherConfig("dinov2-base", "vit_base_patch14_dinov2.lvd142m", "dinov2", ("dinov2_vitb14_pretrain.pth",)),
    TeacherConfig("dinov2-large", "vit_large_patch14_dinov2.lvd142m", "dinov2", ("dinov2_vitl14_pretrain.pth",)),
    TeacherConfig("dinov2-giant", "vit_giant_patch14_dinov2.lvd142m", "dinov2", ("dinov2_vitg14_pretrain.pth",)),
    TeacherConfig("dinov2-small-reg", "vit_small_patch14_reg4_dinov2.lvd142m", "dinov2-reg",
                  ("dinov2_vits14_reg4_pretrain.pth",)),
    TeacherConfig("dinov2-base-reg", "vit_base_patch14_reg4_dinov2.lvd142m", "dinov2-reg",
                  ("dinov2_vitb14_reg4_pretrain.pth",)),
    TeacherConfig("dinov2-large-reg", "vit_large_patch14_reg4_dinov2.lvd142m", "dinov2-reg",
                  ("dinov2_vitl14_reg4_pretrain.pth",)),
    TeacherConfig("dinov2-giant-reg", "vit_giant_patch14_reg4_dinov2.lvd142m", "dinov2-reg",
                  ("dinov2_vitg14_reg4_pretrain.pth",)),
    TeacherConfig("dinov3-small", "vit_small_patch16_dinov3.lvd1689m", "dinov3",
                  ("dinov3_vits16_pretrain_lvd1689m*.pth",)),
    TeacherConfig("dinov3-small-plus", "vit_small_plus_patch16_dinov3.lvd1689m", "dinov3",
                  ("dinov3_vits16plus_pretrain_lvd1689m*.pth",)),
    TeacherConfig("dinov3-base", "vit_base_patch16_dinov3.lvd1689m", "dinov3",
                  ("dinov3_vitb16_pretrain_lvd1689m*.pth",)),
    TeacherConfig("dinov3-large", "vit_large_patch16_dinov3.lvd1689m", "dinov3",
                  ("dinov3_vitl16_pretrain_lvd1689m*.pth",)),
    # The 256-px variants: grid 16 at patch 16 is their own input size.
    TeacherConfig("siglip2-base", "vit_base_patch16_siglip_256.v2_webli", "siglip2"),
    TeacherConfig("siglip2-large", "vit_large_patch16_siglip_256.v2_webli", "siglip2"),
    # timm's note on the OpenAI weights: "natively QuickGELU, use quickgelu model
    # variant for original results"; these variants read the same files.
    TeacherConfig("clip-b16", "vit_base_patch16_clip_quickgelu_224.openai", "clip"),
    TeacherConfig("clip-l14", "vit_large_patch14_clip_quickgelu_224.openai", "clip"),
)
#: The teacher the app and the command line start with.
DEFAULT_TEACHER = "dinov2-small"


def teacher_config(name: str) -> TeacherConfig:
    """The registry entry called `name`; anything else is a one-line error naming the choices."""
    if name not in TEACHERS:
        raise ApmVizError(f"unknown teacher {name!r}; choose one of {', '.join(TEACHERS)}")
    return TEACHERS[name]


@dataclass(frozen=True)
class Normalisation:
    """The per-channel mean and std a teacher's weights were trained with
    (timm's `pretrained_cfg`), for RGB in [0, 1]."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def of(cls, model: torch.nn.Module) -> "Normalisation":
        cfg = getattr(model, "pretrained_cfg", None) or {}
        if "mean" not in cfg or "std" not in cfg:
            raise ApmVizError(f"{type(model).__name__} has no mean/std in its pretrained_cfg")
        return cls(tuple(float(v) for v in cfg["mean"]), tuple(float(v) for v in cfg["std"]))

    def tensor(self, image: np.ndarray) -> torch.Tensor:
        """(S, S, 3) in [0, 1] -> (1, 3, S, S) float32, normalised."""
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0)
        return (x - torch.tensor(self.mean).view(1, 3, 1, 1)) / torch.tensor(self.std).view(1, 3, 1, 1)


@dataclass
class TeacherOutput:
    """A teacher's view of one image.

    image: (S, S, 3) float32 in [0, 1], the square input the teacher saw (S = grid * patch).
    grid: (h, w, D) float32 patch tokens (prefix tokens removed).
    token: (D,) float32 global vector (the class token, or the MAP head's output: `global_vector`).
    pooled_rgb: (h, w, 3) the image average-pooled to the grid.
    model: the registry name; weights: where its weights came from.
    patch: pixels per grid step; normalisation: what the weights expect (the APM folds the same input).
    """

    image: np.ndarray
    grid: np.ndarray
    token: np.ndarray
    pooled_rgb: np.ndarray
    model: str
    weights: WeightsSource
    patch: int
    normalisation: Normalisation
    global_vector: GlobalVector = "cls"

    @property
    def grid_size(self) -> int:
        return self.grid.shape[0]

    def input_tensor(self) -> torch.Tensor:
        """The image as the teacher saw it: (1, 3, S, S), normalised."""
        return self.normalisation.tensor(self.image)

    def record(self) -> dict:
        """What a metrics or manifest file says about the teacher (plain JSON types)."""
        config = TEACHERS.get(self.model)
        g, d = self.grid_size, self.grid.shape[-1]
        return {"name": self.model, "timm_name": config.timm_name if config else None,
                "family": config.family_info.name if config else None, "patch": self.patch,
                "grid": g, "pixels": g * self.patch, "dim": d, "global_vector": self.global_vector,
                "mean": list(self.normalisation.mean), "std": list(self.normalisation.std),
                "weights_source": self.weights.kind, "weights_detail": self.weights.detail}


class Teacher:
    """A timm backbone of the registry, ready to encode images.

    encode(image (S, S, 3) in [0, 1], S a multiple of `patch`) -> TeacherOutput
    with an (S/patch, S/patch, D) grid and a (D,) global vector.
    """

    def __init__(self, config: TeacherConfig, model: torch.nn.Module, weights: WeightsSource, device: str = "cpu"):
        self.config = config
        self.name = config.name
        self.model = model.eval().to(device)
        self.weights = weights
        self.device = device
        self.normalisation = Normalisation.of(model)

    @property
    def family(self) -> Family:
        return self.config.family_info

    @property
    def dim(self) -> int:
        return self.model.embed_dim

    @property
    def patch(self) -> int:
        h, w = self.model.patch_embed.patch_size
        return int(h)

    @property
    def prefix_tokens(self) -> int:
        return int(self.model.num_prefix_tokens)

    def pixels(self, grid: int) -> int:
        """The input side behind a grid x grid patch grid."""
        return grid * self.patch

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward: x (B, 3, S, S) normalised -> (patch tokens (B, h*w, D), global (B, D)).

        The prefix tokens (class, registers) are removed from the patch tokens;
        the global vector is the class token or the MAP head's output.
        """
        tokens = self.model.forward_features(x)  # (B, prefix + h*w, D), final norm applied
        if self.family.global_vector == "map":
            pooled = self.model.forward_head(tokens, pre_logits=True)  # attention pooling, then fc_norm
        else:
            pooled = tokens[:, 0]
        return tokens[:, self.prefix_tokens:], pooled

    def encode(self, image: np.ndarray) -> TeacherOutput:
        s, p = image.shape[0], self.patch
        if image.shape != (s, s, 3) or s % p:
            raise ApmVizError(f"{self.name} needs a square input with a side divisible by {p}, got {image.shape}")
        patches, pooled = self.forward(self.normalisation.tensor(image).to(self.device))
        g = s // p
        return TeacherOutput(image=image.astype(np.float32), grid=patches[0].reshape(g, g, -1).float().cpu().numpy(),
                             token=pooled[0].float().cpu().numpy(), pooled_rgb=pool_to_grid(image, g).astype(np.float32),
                             model=self.name, weights=self.weights, patch=p, normalisation=self.normalisation,
                             global_vector=self.family.global_vector)


def build_model(config: TeacherConfig, seed: int = 0, **kwargs) -> torch.nn.Module:
    """The timm model of a registry entry, random init drawn from `seed`
    (the global RNG is left alone). Offline: pretrained=False."""
    import timm

    with seeded(seed):
        return timm.create_model(config.timm_name, pretrained=False, dynamic_img_size=True, **kwargs)


def checkpoint_filter(model: torch.nn.Module):
    """timm's own key mapping for the model's architecture (the function timm
    applies when it loads pretrained weights: e.g. eva.checkpoint_filter_fn
    maps Meta's DINOv3 names, vision_transformer's maps DINOv2's and OpenAI's)."""
    return getattr(importlib.import_module(type(model).__module__), "checkpoint_filter_fn", None)


def hub_file(model: torch.nn.Module) -> Optional[HubFile]:
    """Where timm publishes the model's weights on the Hugging Face hub."""
    repo = (getattr(model, "pretrained_cfg", None) or {}).get("hf_hub_id")
    return HubFile(repo) if repo else None


def official_file(config: TeacherConfig):
    """The publisher's own checkpoint in the weights folder, if one is there."""
    return find_in_folder(config.official_files) if config.official_files else None


def create_teacher(name: str = DEFAULT_TEACHER, weights: Union[str, os.PathLike, None] = None,
                   allow_download: bool = True, seed: int = 0, device: str = "cpu", **model_kwargs) -> Teacher:
    """Build a teacher of the registry and resolve its weights.

    name: a key of `TEACHERS`.
    weights: "random" forces random init; a path loads that file (safetensors
        or a torch checkpoint, timm's key names or the publisher's, mapped by
        timm's checkpoint filter); None tries the publisher's file in the
        weights folder, the Hugging Face cache, then the hub if
        `allow_download` and reachable, then falls back to random init
        (seeded by `seed`).
    model_kwargs: passed to timm (tests use e.g. depth=2 for a small model).
    """
    config = teacher_config(name)
    model = build_model(config, seed, **model_kwargs)
    path, source = resolve(weights, hub_file(model), allow_download, seed, found=lambda: official_file(config))
    if path is not None:
        load_weights(model, path, name, checkpoint_filter(model))
    return Teacher(config, model, source, device)


@dataclass(frozen=True)
class TeacherInfo:
    """What a registry entry is, read from timm without weights or memory.

    patch: pixels per grid step; dim: patch-token width D; prefix_tokens:
    tokens before the patches (class, registers); normalisation: timm's
    mean/std; local: where weights are on this machine without a download
    ("weights folder: FILE", "Hugging Face cache") or None.
    """

    config: TeacherConfig
    patch: int
    dim: int
    prefix_tokens: int
    normalisation: Normalisation
    local: Optional[str]

    def pixels(self, grid: int) -> int:
        return grid * self.patch

    def differences(self, record: dict) -> list[str]:
        """What a recorded teacher (`TeacherOutput.record`, from a manifest)
        has that this entry would not rebuild: empty when it is the same
        teacher. Keys an older record lacks are not compared."""
        now = {"name": self.config.name, "timm_name": self.config.timm_name, "patch": self.patch, "dim": self.dim,
               "global_vector": self.config.family_info.global_vector, "mean": list(self.normalisation.mean),
               "std": list(self.normalisation.std)}
        return [f"{key} {record[key]} then, {value} now" for key, value in now.items()
                if key in record and record[key] != value]


def describe(name: str) -> TeacherInfo:
    """A registry entry's sizes, built on the meta device (no memory, no weights)."""
    config = teacher_config(name)
    with torch.device("meta"):
        probe = build_model(config, depth=1)  # sizes and config only: one block is enough
    found = official_file(config)
    remote = hub_file(probe)
    cached = remote.cached() if remote is not None else None
    local = f"weights folder: {found.name}" if found is not None else "Hugging Face cache" if cached else None
    return TeacherInfo(config, int(probe.patch_embed.patch_size[0]), int(probe.embed_dim),
                       int(probe.num_prefix_tokens), Normalisation.of(probe), local)
