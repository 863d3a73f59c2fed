"""Teachers: DINOv2 through timm turns an image into patch features.

Weight sources, in order: a local file the user names; the Hugging Face cache;
the hub (only when it answers a short probe); random init. Every result says
where its weights came from, because islands from a random-init teacher mean
something else (see `WeightsSource.warning`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch

from .errors import ApmVizError
from .images import pool_to_grid
from .seeding import seeded
from .weights import HubFile, WeightsSource, load_weights, resolve

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
    hub_id = (getattr(model, "pretrained_cfg", {}) or {}).get("hf_hub_id")
    path, source = resolve(weights, HubFile(hub_id) if hub_id else None, allow_download, seed)
    if path is not None:
        from timm.models.vision_transformer import checkpoint_filter_fn

        load_weights(model, path, name, checkpoint_filter_fn)
    return Teacher(name, model, source, device)
