"""The "boring video": a static image repeated as frames into a video transformer.

The authors' earlier work (NeurIPS 2023) found islands of agreement without
any test-time training: repeat one image into a video that never moves, feed
it to MViTv2, and project a low block's tokens for one frame. This module
does that with torchvision's `mvit_v2_s` (Kinetics-400) and returns every
block's tokens as (frames, h, w, D) grids, ready for `islands.project`.

Facts of torchvision's model (the token grid is fixed at construction): the
input must be exactly (B, 3, 16, 224, 224); the stem halves time, so 16
input frames give 8 token frames. Per block (frames, h, w, D):
block 0 (8, 56, 56, 96); blocks 1-2 (8, 28, 28, 192); blocks 3-13
(8, 14, 14, 384); blocks 14-15 (8, 7, 7, 768). A class token sits at index 0.
torch.fx feature extraction fails on this model, and the app shares one
model between all sessions, so forward hooks (state on the model that two
encodes at once would both see) are not used either: `BoringVideo.walk`
walks the blocks itself, as the model's own forward does, and each block
returns (x, thw).

A boring video is not perfectly boring inside the model: the stem and the
attention pooling pad time with zeros, so the first and last token frames
differ from the middle ones although every input frame is the same. The
middle frames agree closely (`frame_differences`, `consecutive_differences`).

Weight sources, in order: a local file the user names; torchvision's file in
the torch hub cache; a download from download.pytorch.org when the bounded
probe answers; random init (seeded), with a visible warning (`weights.resolve`).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Iterator, Optional, Union

import numpy as np
import torch
from PIL import Image

from .errors import ApmVizError
from .images import LoadedImage, to_array
from .seeding import seeded
from .weights import UrlFile, WeightsSource, load_weights, resolve

#: Input frames the model needs (torchvision's MViTv2-S is built for 16).
FRAMES_IN = 16
#: Input side in pixels.
SIDE = 224
#: Token frames per block: the stem's temporal stride 2 halves the 16 frames.
FRAMES = 8
#: (h, w, D) of each block's token grid, block 0 first.
BLOCK_GRIDS = tuple([(56, 56, 96)] + [(28, 28, 192)] * 2 + [(14, 14, 384)] * 11 + [(7, 7, 768)] * 2)
#: Blocks the authors mean by "the second or third layer" (0-based).
LOW_BLOCKS = (1, 2)
DEFAULT_BLOCK = 1
#: Side above which a block's tokens are average-pooled before t-SNE (block 0 is 56x56).
PROJECT_SIDE = 28
#: Kinetics-400 normalisation, used when the weights' own metadata cannot be read.
MEAN, STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)

RANDOM_WARNING = (
    "Random-init MViTv2: no Kinetics-400 weights were found (no network, no cached or local file). "
    "Its tokens are a fixed random function of the pixels, so islands follow colours and edges, "
    "not objects and parts. Name a weights file or allow the download for the real thing."
)


class VideoWeightsSource(WeightsSource):
    """Where MViTv2's weights came from: "local", "cache" (torch hub cache),
    "hub" (downloaded now from download.pytorch.org) or "random"."""

    KIND_NAMES: ClassVar[dict] = {"local": "local file", "cache": "torch hub cache",
                                  "hub": "downloaded from torchvision", "random": "random init"}
    RANDOM_TEXT: ClassVar[str] = RANDOM_WARNING


@dataclass
class BoringVideoOutput:
    """MViTv2's view of one image repeated as a 16-frame video.

    image: (224, 224, 3) float32 in [0, 1], the frame the model saw 16 times.
    blocks: per block, (frames, h, w, D) float32 tokens, class token removed
        (frames = 8; grids in `BLOCK_GRIDS`).
    weights: where the model's weights came from.
    seconds: wall time of the one pass through every block.
    """

    image: np.ndarray
    blocks: list[np.ndarray]
    weights: WeightsSource
    seconds: float

    @property
    def frames(self) -> int:
        return self.blocks[0].shape[0]

    def field(self, block: int, frame: int = 0) -> np.ndarray:
        """One frame of one block's tokens: (h, w, D)."""
        if not 0 <= block < len(self.blocks):
            raise ApmVizError(f"block {block} does not exist; MViTv2-S has blocks 0 to {len(self.blocks) - 1}")
        if not 0 <= frame < self.frames:
            raise ApmVizError(f"frame {frame} does not exist; blocks hold token frames 0 to {self.frames - 1}")
        return self.blocks[block][frame]

    def frame_differences(self, block: int, reference: int = 0) -> np.ndarray:
        """How far each frame's tokens are from the reference frame's: (frames,).

        ||X_t - X_ref||_F / ||X_ref||_F over the (h, w, D) grid; 0 for the
        reference itself. A boring video that has settled gives values near 0.
        """
        return frame_differences(self.blocks[block], reference)


    def consecutive_differences(self, block: int) -> np.ndarray:
        """How far each frame's tokens are from the frame before: (frames,), 0 for frame 0."""
        return consecutive_differences(self.blocks[block])


def frame_differences(tokens: np.ndarray, reference: int = 0) -> np.ndarray:
    """(frames, h, w, D) -> (frames,) relative Frobenius distance to frame `reference`."""
    x = tokens.astype(np.float64)
    ref = x[reference]
    norm = np.linalg.norm(ref)
    diff = np.linalg.norm((x - ref).reshape(x.shape[0], -1), axis=1)
    return (diff / (norm if norm > 0 else 1.0)).astype(np.float32)


def consecutive_differences(tokens: np.ndarray) -> np.ndarray:
    """(frames, h, w, D) -> (frames,): ||X_t - X_t-1||_F / ||X_t-1||_F, 0 for the first frame."""
    x = tokens.astype(np.float64).reshape(tokens.shape[0], -1)
    diff = np.linalg.norm(x[1:] - x[:-1], axis=1)
    norm = np.linalg.norm(x[:-1], axis=1)
    return np.concatenate([[0.0], diff / np.where(norm > 0, norm, 1.0)]).astype(np.float32)


def pool_field(field: np.ndarray, max_side: int) -> np.ndarray:
    """Average-pool an (h, w, D) field by an integer factor until its side is at most `max_side`.

    t-SNE time grows faster than the number of points; block 0's 56x56 grid
    pooled to 28x28 projects about four times faster.
    """
    h, w, d = field.shape
    k = 1
    while max(h, w) // k > max_side and h % (2 * k) == 0 and w % (2 * k) == 0:
        k *= 2
    if k == 1:
        return field
    return field.reshape(h // k, k, w // k, k, d).mean(axis=(1, 3))


def boring_clip(image: np.ndarray, mean=MEAN, std=STD, frames: int = FRAMES_IN) -> torch.Tensor:
    """(224, 224, 3) in [0, 1] -> (1, 3, frames, 224, 224) normalised clip of one repeated frame."""
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)
    x = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    return x[None, :, None].expand(1, 3, frames, *x.shape[1:]).contiguous()


def _as_frame(image: Union[LoadedImage, Image.Image, np.ndarray]) -> np.ndarray:
    if isinstance(image, LoadedImage):
        image = image.image
    if isinstance(image, Image.Image):
        return to_array(image, SIDE)
    arr = np.asarray(image, dtype=np.float32)
    if arr.shape != (SIDE, SIDE, 3):
        raise ApmVizError(f"MViTv2 needs a {SIDE}x{SIDE} RGB frame, got an array of shape {arr.shape}")
    return arr


class BoringVideo:
    """torchvision's MViTv2-S, read block by block.

    encode(image) -> BoringVideoOutput: the image repeated to 16 frames,
    normalised as the weights require, one pass, every block's tokens.
    Nothing on the model changes, so any number of threads may encode with
    one shared BoringVideo at once.
    """

    def __init__(self, model: torch.nn.Module, weights: WeightsSource, device: str = "cpu"):
        self.model = model.eval().to(device)
        self.weights = weights
        self.device = device
        meta = _transforms_meta()
        self.mean, self.std = meta.get("mean", MEAN), meta.get("std", STD)

    @property
    def depth(self) -> int:
        return len(self.model.blocks)

    def walk(self, clip: torch.Tensor) -> Iterator[tuple[torch.Tensor, tuple[int, int, int]]]:
        """Each block's output for a (B, 3, 16, 224, 224) clip, block 0 first:
        x (B, 1 + t*h*w, D) with the class token first, and thw = (t, h, w).

        The steps of torchvision's `MViT.forward` up to its last block (patchify,
        positional encoding, the blocks); its final norm and head are not needed.
        """
        m = self.model
        x = m.conv_proj(clip).flatten(2).transpose(1, 2)
        x = m.pos_encoding(x)
        thw = (m.pos_encoding.temporal_size,) + tuple(m.pos_encoding.spatial_size)
        for block in m.blocks:
            x, thw = block(x, thw)
            yield x, tuple(thw)

    @torch.inference_mode()
    def encode(self, image: Union[LoadedImage, Image.Image, np.ndarray]) -> BoringVideoOutput:
        frame = _as_frame(image)
        clip = boring_clip(frame, self.mean, self.std).to(self.device)
        blocks = []
        start = time.perf_counter()
        for x, (t, h, w) in self.walk(clip):
            blocks.append(x[0, 1:].float().cpu().reshape(t, h, w, x.shape[-1]).numpy())
        seconds = time.perf_counter() - start
        return BoringVideoOutput(image=frame, blocks=blocks, weights=self.weights, seconds=seconds)


def _weights_enum():
    from torchvision.models.video import MViT_V2_S_Weights

    return MViT_V2_S_Weights.KINETICS400_V1


def _transforms_meta() -> dict:
    """mean / std / crop size from the Kinetics-400 weights' transforms (no download needed)."""
    try:
        t = _weights_enum().transforms()
        return {"mean": tuple(t.mean), "std": tuple(t.std), "crop": tuple(t.crop_size)}
    except Exception:
        return {}


def remote() -> UrlFile:
    """Where torchvision publishes the Kinetics-400 file (its name ends in a sha256 prefix)."""
    url = _weights_enum().url
    match = re.search(r"-([a-f0-9]+)\.", os.path.basename(url))
    return UrlFile(url, hash_prefix=match.group(1) if match else None)


def cached_weights_path() -> Path:
    """Where torchvision keeps the Kinetics-400 file in the torch hub cache
    ($TORCH_HOME/hub/checkpoints/, read at call time)."""
    return remote().cache_path()


def build_mvit(seed: int = 0) -> torch.nn.Module:
    """torchvision's MViTv2-S, random init drawn from `seed` (the global RNG is left alone)."""
    from torchvision.models.video import mvit_v2_s

    with seeded(seed):
        return mvit_v2_s(weights=None)


WHAT = "torchvision mvit_v2_s"


def create_boring_video(weights: Union[str, os.PathLike, None] = None, allow_download: bool = True,
                        seed: int = 0, device: str = "cpu") -> BoringVideo:
    """Build MViTv2-S and resolve its weights.

    weights: "random" forces random init; a path loads that file (a
        torchvision state dict, .pth read with weights_only or .safetensors);
        None tries the torch hub cache, then a download when `allow_download`
        and download.pytorch.org answers, then random init (seeded by `seed`).
    """
    path, source = resolve(weights, remote(), allow_download, seed, source=VideoWeightsSource)
    model = build_mvit(seed)
    if path is not None:
        load_weights(model, path, WHAT)
    return BoringVideo(model, source, device)
