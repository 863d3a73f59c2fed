"""The Asynchronous Perception Machine: fold an image into a trigger column,
unfold it at any location through one shared field MLP.

Shapes (B images, h x w grid, N = h*w locations, D teacher width):
    image            (B, 3, h*patch, w*patch)
    trigger column T (B, h*w)              fold: Conv2d(3 -> 1, patch, stride patch)
    positional code  (N, pos_dim)          fixed 2-D sin/cos, continuous coordinates
    query            [T | I_xy | p_xy]     never materialised: see `QueryLinear`
    field            (B, N, D)             features at the queried locations
    rgb              (B, N, 3)
    global output    (B, D)                mean or attention pooling of the field

Every location is an independent query of the same MLP: the field can be
computed in chunks of any size, in any order, at any resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, Optional

import torch
from torch import nn
import torch.nn.functional as F

Pooling = Literal["mean", "attention"]


@dataclass(frozen=True)
class APMConfig:
    """Sizes of one APM.

    hidden: widths of the field MLP's hidden layers (ReLU between them);
        a linear feature head maps the last one to `feature_dim`.
    pos_dim: width of the positional code (half for x, half for y).
    pos_base, pos_scale: the code's frequencies, pos_scale * base^(-2i/(pos_dim/2))
        radians per grid step (the paper: base 10000, scale 1).
    local_patch: add the raw patch I_xy to each query (the paper's figure).
    init_std: weights drawn from N(0, init_std) (the authors use 0.01);
        None keeps PyTorch's default initialisation.
    """

    name: str = "laptop"
    hidden: tuple[int, ...] = (512, 512, 256)
    pos_dim: int = 256
    pos_base: float = 10000.0
    pos_scale: float = 1.0
    rgb_hidden: int = 256
    patch: int = 14
    local_patch: bool = False
    pooling: Pooling = "mean"
    attention_heads: int = 8
    init_std: Optional[float] = None


PRESETS: dict[str, APMConfig] = {
    # Variant F of the paper: 5 hidden layers, ~54 M parameters at D=1024.
    "paper": APMConfig(name="paper", hidden=(4096, 4096, 4096, 2048, 1024), pos_dim=1024),
    # Variant T, the paper's test-time-training MLP: ~22.8 M parameters.
    "paper-ttt": APMConfig(name="paper-ttt", hidden=(4096, 2048, 1024), pos_dim=1024),
    # Small enough for 250 iterations at 32x32 in seconds on two CPU cores.
    "laptop": APMConfig(name="laptop", hidden=(512, 512, 256), pos_dim=256),
}


def get_preset(name: str, **overrides) -> APMConfig:
    """A preset by name, with optional field overrides."""
    from .errors import ApmVizError

    if name not in PRESETS:
        raise ApmVizError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)


def grid_coords(h: int, w: int, scale: float = 1.0) -> torch.Tensor:
    """Centres of an (h*scale) x (w*scale) grid in units of the base grid.

    Returns (N, 2) float32 [x, y], row-major (y outer). scale=1 gives the
    integer indices 0..w-1, 0..h-1; scale=2 gives half-steps covering the
    same image, so a model fit at h x w can be queried at 2h x 2w.
    """
    hs, ws = int(round(h * scale)), int(round(w * scale))
    ys = (torch.arange(hs, dtype=torch.float32) + 0.5) / scale - 0.5
    xs = (torch.arange(ws, dtype=torch.float32) + 0.5) / scale - 0.5
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def positional_code(coords: torch.Tensor, dim: int, base: float = 10000.0, scale: float = 1.0) -> torch.Tensor:
    """Fixed 2-D sin/cos code at continuous coordinates.

    coords: (N, 2) [x, y] in grid steps. Returns (N, dim): the first half
    encodes x, the second half y; each half has dim/4 frequencies
    scale * base^(-k/(dim/2)) radians per grid step for even k, sin on even
    channels and cos on odd ones. scale=1 is the paper's code; its highest
    frequency, 1 rad per step, is below the grid's Nyquist rate (pi).
    """
    if dim % 4:
        raise ValueError("pos_dim must be a multiple of 4")
    half = dim // 2
    k = torch.arange(0, half, 2, dtype=torch.float64)
    freqs = scale * base ** (-k / half)  # (half/2,)
    out = []
    for axis in (0, 1):
        angles = coords[:, axis : axis + 1].double() * freqs  # (N, half/2)
        code = torch.empty(coords.shape[0], half, dtype=torch.float64)
        code[:, 0::2] = torch.sin(angles)
        code[:, 1::2] = torch.cos(angles)
        out.append(code)
    return torch.cat(out, dim=1).float()


class QueryLinear(nn.Module):
    """A linear layer over the query [T | I_xy | p_xy] that never builds it.

    W [T; I; p] + b = W_T T + W_I I + W_p p + b. The trigger-column part is
    the same for every location, so it is computed once per image and
    broadcast: the first layer costs pos_dim (+ patch) per location instead of
    trigger_dim + pos_dim. Numerically the same layer as one Linear on the
    concatenation.
    """

    def __init__(self, trigger_dim: int, pos_dim: int, patch_dim: int, out_dim: int, extra_dim: int = 0):
        super().__init__()
        self.trigger = nn.Linear(trigger_dim, out_dim)
        self.pos = nn.Linear(pos_dim, out_dim, bias=False)
        self.patch = nn.Linear(patch_dim, out_dim, bias=False) if patch_dim else None
        self.extra = nn.Linear(extra_dim, out_dim, bias=False) if extra_dim else None

    def column(self, T: torch.Tensor) -> torch.Tensor:
        """(B, trigger_dim) -> (B, 1, out): the part shared by all locations."""
        return self.trigger(T).unsqueeze(1)

    def forward(self, column: torch.Tensor, pos: torch.Tensor, patches: Optional[torch.Tensor] = None,
                extra: Optional[torch.Tensor] = None) -> torch.Tensor:
        """column (B,1,out), pos (N,pos_dim), patches (B,N,patch_dim), extra (B,N,extra) -> (B,N,out)."""
        out = column + self.pos(pos).unsqueeze(0)
        if self.patch is not None:
            out = out + self.patch(patches)
        if self.extra is not None:
            out = out + self.extra(extra)
        return out


class APM(nn.Module):
    """An Asynchronous Perception Machine for an h x w grid and a D-wide teacher."""

    def __init__(self, config: APMConfig, grid: tuple[int, int], feature_dim: int):
        super().__init__()
        self.config = config
        self.grid = grid
        self.feature_dim = feature_dim
        h, w = grid
        p = config.patch
        self.fold_conv = nn.Conv2d(3, 1, kernel_size=p, stride=p)
        trigger_dim = h * w
        patch_dim = 3 * p * p if config.local_patch else 0
        widths = config.hidden
        self.first = QueryLinear(trigger_dim, config.pos_dim, patch_dim, widths[0])
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.head = nn.Linear(widths[-1], feature_dim)
        # RGB head: input = [feature | whole query] -> rgb_hidden -> rgb_hidden -> 3.
        self.rgb_first = QueryLinear(trigger_dim, config.pos_dim, patch_dim, config.rgb_hidden, extra_dim=feature_dim)
        self.rgb_rest = nn.Sequential(nn.ReLU(), nn.Linear(config.rgb_hidden, config.rgb_hidden), nn.ReLU(),
                                      nn.Linear(config.rgb_hidden, 3))
        if config.pooling == "attention":
            heads = config.attention_heads if feature_dim % config.attention_heads == 0 else 1
            self.pool_query = nn.Parameter(torch.zeros(1, 1, feature_dim))
            self.pool_attn = nn.MultiheadAttention(feature_dim, heads, batch_first=True)
            self.register_buffer("pool_pos", positional_code(grid_coords(h, w), feature_dim), persistent=False)
        self.register_buffer("grid_pos", positional_code(grid_coords(h, w), config.pos_dim, config.pos_base, config.pos_scale),
                             persistent=False)
        self.reset_parameters()

    # -- weights -----------------------------------------------------------
    def reset_parameters(self) -> None:
        """Re-draw every weight (the paper re-initialises before each image)."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.reset_parameters()
                if self.config.init_std is not None:
                    nn.init.normal_(m.weight, 0.0, self.config.init_std)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
            elif isinstance(m, nn.MultiheadAttention):
                m._reset_parameters()
        if hasattr(self, "pool_query"):
            nn.init.normal_(self.pool_query, 0.0, 0.02)

    # -- fold --------------------------------------------------------------
    def fold(self, image: torch.Tensor) -> torch.Tensor:
        """Fold images into trigger columns: (B, 3, h*p, w*p) -> (B, h*w)."""
        return self.fold_conv(image).flatten(1)

    def patches(self, image: torch.Tensor) -> torch.Tensor:
        """Raw local patches I_xy: (B, 3, h*p, w*p) -> (B, h*w, 3*p*p)."""
        p = self.config.patch
        return F.unfold(image, kernel_size=p, stride=p).transpose(1, 2)

    # -- unfold ------------------------------------------------------------
    def unfold(self, T: torch.Tensor, pos: Optional[torch.Tensor] = None, patches: Optional[torch.Tensor] = None,
               with_rgb: bool = True) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Query the field at the locations whose positional codes are `pos`.

        T: (B, h*w) trigger columns. pos: (N, pos_dim), default the model's own
        grid. patches: (B, N, 3*p*p) when the config uses local patches.
        Returns features (B, N, D) and rgb (B, N, 3) (None if not with_rgb).
        """
        pos = self.grid_pos if pos is None else pos
        if self.config.local_patch and patches is None:
            raise ValueError("this APM needs the local patches I_xy of the queried locations")
        x = F.relu(self.first(self.first.column(T), pos, patches))
        for layer in self.hidden:
            x = F.relu(layer(x))
        feats = self.head(x)
        rgb = None
        if with_rgb:
            rgb = torch.sigmoid(self.rgb_rest(self.rgb_first(self.rgb_first.column(T), pos, patches, feats)))
        return feats, rgb

    def field(self, T: torch.Tensor, coords: Optional[torch.Tensor] = None, chunk: Optional[int] = None,
              order: Optional[torch.Tensor] = None, patches: Optional[torch.Tensor] = None,
              with_rgb: bool = True) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The field at `coords` (N, 2) in grid units (default: the model's grid).

        Locations are evaluated `chunk` at a time (None: all at once), in the
        given `order` (a permutation of range(N)); the result is returned in
        coordinate order whatever the chunking or order.
        Returns features (B, N, D) and rgb (B, N, 3) or None.
        """
        if coords is None:
            pos = self.grid_pos
        else:
            pos = positional_code(coords, self.config.pos_dim, self.config.pos_base,
                                  self.config.pos_scale).to(T.device)
        n = pos.shape[0]
        if chunk is None and order is None:
            return self.unfold(T, pos, patches, with_rgb)
        order = torch.arange(n) if order is None else order
        chunk = chunk or n
        feats = T.new_empty(T.shape[0], n, self.feature_dim)
        rgb = T.new_empty(T.shape[0], n, 3) if with_rgb else None
        for start in range(0, n, chunk):
            idx = order[start : start + chunk].to(T.device)
            f, c = self.unfold(T, pos[idx], None if patches is None else patches[:, idx], with_rgb)
            feats[:, idx] = f
            if with_rgb:
                rgb[:, idx] = c
        return feats, rgb

    def pool(self, feats: torch.Tensor) -> torch.Tensor:
        """Global output from a grid field: (B, N, D) -> (B, D)."""
        if self.config.pooling == "mean":
            return feats.mean(dim=1)
        keys = feats + self.pool_pos.unsqueeze(0)
        out, _ = self.pool_attn(self.pool_query.expand(feats.shape[0], -1, -1), keys, feats, need_weights=False)
        return out[:, 0]

    def forward(self, image: torch.Tensor, with_rgb: bool = True):
        """Fold and unfold the whole grid.

        image (B, 3, h*p, w*p) -> (field (B, N, D), rgb (B, N, 3) or None, global (B, D)).
        """
        T = self.fold(image)
        patches = self.patches(image) if self.config.local_patch else None
        feats, rgb = self.unfold(T, None, patches, with_rgb)
        return feats, rgb, self.pool(feats)

    def flops_per_location(self) -> int:
        """Multiply-adds per location of the field MLP (trigger part excluded)."""
        widths = self.config.hidden
        macs = self.config.pos_dim * widths[0]
        macs += sum(a * b for a, b in zip(widths[:-1], widths[1:]))
        return macs + widths[-1] * self.feature_dim


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
