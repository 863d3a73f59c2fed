"""Test-time training: overfit a fresh APM on one image's teacher features.

Config in, `Run` out. A `Trainer` advances in steps so that a face can show
progress, pause, resume or cancel; `run_ttt` drives one to the end.

Conventions: iteration i is the model after i Adam updates. `Run.losses[i]` is
the loss of that model and `Snapshot(i)` its field, taken from the very forward
pass that computed the loss, so snapshots cost no extra work.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ApmVizError
from .model import APM, APMConfig, get_preset
from .seeding import seeded
from .teachers import TeacherOutput
from .weights import WeightsSource

LOSSES = ("token", "grid", "rgb")


@dataclass(frozen=True)
class TTTConfig:
    """Settings of one test-time-training run.

    loss: terms joined by '+', from "token" (pooled output vs the teacher's
        CLS token: the paper's islands experiment), "grid" (field vs patch
        tokens) and "rgb" (RGB field vs the image pooled to the grid).
    loss_weights: weight per term, e.g. (("rgb", 0.5),); unnamed terms weigh 1.
    lr, lr_step: Adam learning rate, multiplied by 0.1 every lr_step iterations
        (None: constant, as in the paper's figure).
    snapshots: iterations to keep fields of (None: `default_snapshots`).
    preset and the overrides below it pick the APM's sizes.
    """

    preset: str = "laptop"
    loss: str = "token"
    iters: int = 250
    lr: float = 1e-4
    lr_step: Optional[int] = None
    seed: int = 0
    snapshots: Optional[tuple[int, ...]] = None
    loss_weights: tuple[tuple[str, float], ...] = ()
    pooling: Optional[str] = None
    local_patch: Optional[bool] = None
    pos_base: Optional[float] = None
    pos_scale: Optional[float] = None
    init_std: Optional[float] = None
    device: str = "cpu"

    def terms(self) -> dict[str, float]:
        names = [t.strip() for t in self.loss.split("+") if t.strip()]
        bad = [t for t in names if t not in LOSSES]
        if not names or bad:
            raise ApmVizError(f"unknown loss {self.loss!r}; use terms from {', '.join(LOSSES)} joined by '+'")
        weights = dict(self.loss_weights)
        return {t: float(weights.get(t, 1.0)) for t in names}

    def apm_config(self, patch: Optional[int] = None) -> APMConfig:
        """The APM's sizes; `patch` is the teacher's (fold kernel and stride, I_xy size)."""
        overrides = {k: v for k, v in (("pooling", self.pooling), ("local_patch", self.local_patch),
                                       ("pos_base", self.pos_base), ("pos_scale", self.pos_scale),
                                       ("init_std", self.init_std), ("patch", patch)) if v is not None}
        return get_preset(self.preset, **overrides)

    def snapshot_iterations(self) -> list[int]:
        wanted = default_snapshots(self.iters) if self.snapshots is None else self.snapshots
        return sorted({int(i) for i in wanted if 0 <= int(i) <= self.iters} | {self.iters})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["loss_weights"] = dict(self.loss_weights)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TTTConfig":
        d = dict(d)
        d["loss_weights"] = tuple(sorted((d.get("loss_weights") or {}).items()))
        if d.get("snapshots") is not None:
            d["snapshots"] = tuple(d["snapshots"])
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


#: Settings under which a grid-supervised field converges within a default run
#: on two CPU cores. The paper's code (frequencies up to 1 rad per grid step)
#: cannot tell neighbouring patches apart, and lr 1e-4 fits slowly: measured on
#: chelsea.jpg with a random ViT-S/14 at 32x32, laptop preset, 250 steps (5 s),
#: grid MSE 1.0 -> 0.43 and mean relative L1 error 1.0 -> 0.63 (paper settings)
#: against MSE 1.0 -> 0.11, relative error 1.0 -> 0.30 with these. A sweep of lr
#: (3e-4 to 1e-2, constant, step or cosine) and frequencies (scale 1 to 2 pi,
#: base 10 to 1e4) found nothing better; a 1024-1024-512 MLP with a 512-wide
#: code fits a little better (0.20 against 0.24) at 3.7x the cost. The local
#: patch I_xy helps most (`compare.converging_config`), but an APM that must
#: decode a trigger column alone (interpolation) cannot use it, so it is not here.
#: The highest frequency, pos_scale rad per grid step, sits below the grid's
#: Nyquist rate pi: at exactly pi its sin channel is 0 at every grid point (it
#: never trains) and reaches +-0.71 at the 2x query points. Measured with
#: bench/bench_pos_scale.py (chelsea, random ViT-S/14, laptop, 250 steps, seed 0),
#: grid MSE at 32x32 / 16x16: pi 0.126 / 0.076, 2.8 0.110 / 0.074.
GRID_DEFAULTS = {"lr": 1e-3, "pos_scale": 2.8, "pos_base": 100.0}


def recommended(loss: str, **overrides) -> TTTConfig:
    """A config with the defaults that suit `loss`: the paper's for token
    supervision, `GRID_DEFAULTS` when the grid is supervised."""
    base = dict(GRID_DEFAULTS) if "grid" in loss else {}
    base.update({k: v for k, v in overrides.items() if v is not None})
    return TTTConfig(loss=loss, **base)


def default_snapshots(iters: int) -> list[int]:
    """0, a log-spaced set of early iterations, every 50 after that, and the last.

    The early ones catch the blocky positional-code patterns breaking into
    parts (about iteration 18 in the paper).
    """
    early = [1, 2, 3, 5, 8, 12, 18, 25, 35]
    return sorted({0, *[i for i in early if i < min(iters, 50)], *range(50, iters, 50), iters})


@dataclass
class Snapshot:
    """The APM at one iteration.

    field: (h, w, D) float32 feature field.
    rgb: (h, w, 3) float32 RGB field in [0, 1].
    global_out: (D,) pooled global output.
    loss: total loss at this iteration.
    """

    iteration: int
    field: np.ndarray
    rgb: np.ndarray
    global_out: np.ndarray
    loss: float


@dataclass
class Run:
    """One image's test-time training: settings, loss history, snapshots.

    losses: [(iteration, total loss)] for every iteration computed.
    terms: per loss term, [(iteration, value)].
    status: "running", "done", "cancelled" or "diverged"; message says why.
    """

    config: TTTConfig
    grid: int
    teacher_model: str
    weights: WeightsSource
    losses: list[tuple[int, float]] = field(default_factory=list)
    terms: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    snapshots: list[Snapshot] = field(default_factory=list)
    status: str = "running"
    message: str = ""
    seconds: float = 0.0

    @property
    def iterations(self) -> list[int]:
        return [s.iteration for s in self.snapshots]

    def snapshot(self, iteration: int) -> Snapshot:
        """The snapshot at `iteration`, or the last one taken before it."""
        if not self.snapshots:
            raise ApmVizError("this run has no snapshots yet")
        best = self.snapshots[0]
        for s in self.snapshots:
            if s.iteration <= iteration:
                best = s
        return best

    @property
    def finished(self) -> bool:
        return self.status != "running"

    def loss_series(self) -> dict[str, list[tuple[int, float]]]:
        """The curves a loss plot draws: "total", then each term when there are several."""
        series = {"total": self.losses}
        if len(self.terms) > 1:
            series.update(self.terms)
        return series

    def loss_drop(self) -> float:
        """First loss over last loss (how many-fold it fell)."""
        if len(self.losses) < 2:
            return 1.0
        last = max(self.losses[-1][1], 1e-30)
        return self.losses[0][1] / last


def build_apm(config: TTTConfig, grid: int, feature_dim: int, patch: Optional[int] = None) -> APM:
    """A freshly initialised APM for a grid x grid field of a `patch`-pixel
    teacher (None: the preset's), seeded by config.seed."""
    with seeded(config.seed):
        return APM(config.apm_config(patch), (grid, grid), feature_dim).to(config.device)


#: Environment variable that caps the memory one run may use: bytes, or a
#: number with a K, M, G or T suffix (binary units), e.g. "6G".
MEMORY_LIMIT_ENV = "APM_VIZ_MEMORY_LIMIT"
#: Without that variable a run may use this fraction of the memory available
#: when it starts, leaving the rest to the teacher, projections and other sessions.
MEMORY_FRACTION = 0.5


@dataclass(frozen=True)
class MemoryEstimate:
    """What one TTT run holds at its peak, in bytes (float32 throughout).

    weights: parameters, their gradients and Adam's two moments (4 copies).
    activations: the forward pass at all N = grid*grid locations of every
        image in the batch (what backward keeps), doubled for the gradients
        flowing back through them.
    snapshots: every snapshot's field (N, D), RGB field (N, 3) and global output.
    overhead: torch's working buffers and allocator slack, `RUN_OVERHEAD`.
    """

    parameters: int
    weights: int
    activations: int
    snapshots: int

    @property
    def overhead(self) -> int:
        return int(RUN_OVERHEAD[0] + RUN_OVERHEAD[1] * (self.weights + self.activations))

    @property
    def total(self) -> int:
        return self.weights + self.activations + self.snapshots + self.overhead


#: Fixed bytes plus a fraction of weights and activations that a run holds
#: beyond them. Measured as peak RSS growth over 3 steps on the CPU, D=384:
#: laptop 32x32 295 MB (72 estimated before overhead), paper-ttt 32x32 755 (478),
#: paper 32x32 1411 (1118), paper 16x16 1214 (841).
RUN_OVERHEAD = (256 * 2**20, 0.2)


def estimate_memory(config: TTTConfig, grid: int, feature_dim: int, images: int = 1,
                    patch: Optional[int] = None) -> MemoryEstimate:
    """Peak memory of a run at a grid x grid field with a feature_dim-wide,
    `patch`-pixel teacher, fitting `images` images at once (activations grow with them)."""
    apm = config.apm_config(patch)
    with torch.device("meta"):  # exact parameter count, no memory spent
        params = sum(p.numel() for p in APM(apm, (grid, grid), feature_dim).parameters())
    n = grid * grid
    widths = apm.hidden
    per_location = (apm.pos_dim + 3 * widths[0] + 2 * sum(widths[1:])  # code, first layer, hidden + ReLU
                    + 3 * feature_dim                                  # field, loss residual and square
                    + 5 * apm.rgb_hidden + 6)                          # RGB head
    if apm.local_patch:
        per_location += 3 * apm.patch**2 + widths[0]
    if apm.pooling == "attention":
        per_location += 4 * feature_dim
    image = 3 * (grid * apm.patch) ** 2
    snaps = len(config.snapshot_iterations()) * (n * (feature_dim + 3) + feature_dim)
    return MemoryEstimate(parameters=params, weights=16 * params,
                          activations=4 * images * (2 * n * per_location + image), snapshots=4 * snaps)


def _parse_bytes(text: str) -> int:
    units = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = t[-1:] if t[-1:] in units else ""
    try:
        value = float(t[: len(t) - len(unit)]) * units[unit]
    except ValueError:
        value = -1
    if not value > 0:
        raise ApmVizError(f"{MEMORY_LIMIT_ENV}={text!r} is not a size such as 6G or 512M")
    return int(value)


def available_memory(device: str = "cpu") -> Optional[int]:
    """Bytes free for a new run on `device` now (None when the system does not say)."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def memory_limit(device: str = "cpu") -> tuple[Optional[int], str]:
    """The memory one run may use and where that limit comes from."""
    if os.environ.get(MEMORY_LIMIT_ENV, "").strip():
        return _parse_bytes(os.environ[MEMORY_LIMIT_ENV]), f"set by {MEMORY_LIMIT_ENV}"
    free = available_memory(device)
    if free is None:
        return None, "unknown"
    return int(free * MEMORY_FRACTION), f"{MEMORY_FRACTION:.0%} of the memory free now; {MEMORY_LIMIT_ENV} changes it"


def _gb(n: int) -> str:
    return f"{n / 2**30:.2f} GB" if n >= 2**28 else f"{n / 2**20:.0f} MB"


def check_memory(config: TTTConfig, grid: int, feature_dim: int,
                 limit_bytes: Optional[int] = None, images: int = 1, patch: Optional[int] = None) -> MemoryEstimate:
    """Refuse, before anything is allocated, a run that would not fit.

    limit_bytes: None reads `memory_limit(config.device)`. images: how many
    are fitted at once. Raises ApmVizError naming the preset, grid, pixels,
    images and limit; returns the estimate otherwise.
    """
    est = estimate_memory(config, grid, feature_dim, images, patch)
    how = "given"
    if limit_bytes is None:
        limit_bytes, how = memory_limit(config.device)
    if limit_bytes is not None and est.total > limit_bytes:
        px = grid * config.apm_config(patch).patch
        raise ApmVizError(
            f"this run needs about {_gb(est.total)} (preset {config.preset}: {est.parameters / 1e6:.1f} M "
            f"parameters; grid {grid}x{grid} = {px}x{px} px{f'; {images} images' if images > 1 else ''}; "
            f"{len(config.snapshot_iterations())} snapshots) "
            f"but the limit is {_gb(limit_bytes)} ({how}); choose a smaller preset or grid"
            + (" or fewer images" if images > 1 else ""))
    return est


class Trainer:
    """Advances one TTT run step by step; its `run` grows as it goes.

    teacher: one image's teacher output, or a batch of them (one grid and
    teacher; B images): the batch is fitted at once, losses are means over it
    and snapshots show image 0.

    Usage: t = Trainer(teacher_out, config); while not t.run.finished: t.step(10)
    """

    #: A loss this many times its starting value (or not finite) counts as divergence.
    DIVERGENCE = 1e4

    def __init__(self, teacher: Union[TeacherOutput, Sequence[TeacherOutput]], config: TTTConfig):
        batch = [teacher] if isinstance(teacher, TeacherOutput) else list(teacher)
        first, b = batch[0], len(batch)
        self.config = config
        self.terms = config.terms()
        g, p = first.grid_size, first.patch
        if len({(t.grid.shape, t.patch, t.normalisation) for t in batch}) != 1 or \
                any(t.image.shape[0] != g * p for t in batch):
            raise ApmVizError("teacher output and image size disagree")
        check_memory(config, g, first.grid.shape[-1], images=b, patch=p)
        self.model = build_apm(config, g, first.grid.shape[-1], p)
        self.model.train()
        # The fused kernel updates each tensor in one pass instead of foreach's several;
        # measured 1.7 to 2.5x faster per Adam step on two CPU cores, same update rule.
        fused = torch.device(config.device).type in ("cpu", "cuda")
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, fused=fused or None)
        self.scheduler = (torch.optim.lr_scheduler.StepLR(self.optimizer, config.lr_step, 0.1)
                          if config.lr_step else None)
        dev = config.device
        # The image as the teacher saw it, normalised as its weights expect: (B, 3, S, S).
        self.image = torch.cat([t.input_tensor() for t in batch]).to(dev)
        self.target_token = torch.from_numpy(np.stack([t.token for t in batch])).to(dev)  # (B, D)
        self.target_grid = torch.from_numpy(np.stack([t.grid for t in batch]).reshape(b, g * g, -1)).to(dev)
        self.target_rgb = torch.from_numpy(np.stack([t.pooled_rgb for t in batch]).reshape(b, g * g, 3)).to(dev)
        self.want = set(config.snapshot_iterations())
        self.iteration = 0
        self.run = Run(config=config, grid=g, teacher_model=first.model, weights=first.weights,
                       terms={t: [] for t in self.terms})
        self._cancel = False

    def cancel(self, message: str = "cancelled by the user") -> None:
        """Stop at the next step; every snapshot so far is kept."""
        self._cancel = True
        self._cancel_message = message

    def _losses(self, feats, rgb, pooled) -> dict[str, torch.Tensor]:
        out = {}
        if "token" in self.terms:
            out["token"] = F.mse_loss(pooled, self.target_token)
        if "grid" in self.terms:
            out["grid"] = F.mse_loss(feats, self.target_grid)
        if "rgb" in self.terms:
            out["rgb"] = F.mse_loss(rgb, self.target_rgb)
        return out

    def step(self, n: int = 1) -> Run:
        """Advance up to n iterations (fewer at the end, on cancel or divergence)."""
        run, cfg = self.run, self.config
        g = run.grid
        t0 = time.perf_counter()
        try:
            for _ in range(n):
                if run.finished:
                    break
                if self._cancel:
                    run.status, run.message = "cancelled", self._cancel_message
                    break
                i = self.iteration
                # The RGB head only costs time when nothing reads it (measured: a quarter of
                # the laptop preset's work); the loss and the snapshots still get it.
                feats, rgb, pooled = self.model(self.image, with_rgb="rgb" in self.terms or i in self.want)
                parts = self._losses(feats, rgb, pooled)
                loss = sum(self.terms[k] * v for k, v in parts.items())
                value = float(loss.detach())
                run.losses.append((i, value))
                for k, v in parts.items():
                    run.terms[k].append((i, float(v.detach())))
                start = run.losses[0][1]
                if not math.isfinite(value) or value > self.DIVERGENCE * max(start, 1e-12):
                    run.status = "diverged"
                    run.message = (f"the loss diverged at iteration {i} ({value:.3g}); lower the learning rate "
                                   f"(now {cfg.lr:g}). The {len(run.snapshots)} snapshots before it are kept.")
                    break
                if i in self.want:
                    run.snapshots.append(Snapshot(
                        iteration=i,
                        field=feats.detach()[0].reshape(g, g, -1).float().cpu().numpy(),
                        rgb=rgb.detach()[0].reshape(g, g, 3).float().cpu().numpy(),
                        global_out=pooled.detach()[0].float().cpu().numpy(),
                        loss=value))
                if i >= cfg.iters:
                    run.status, run.message = "done", f"{cfg.iters} iterations"
                    break
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                if self.scheduler is not None:
                    self.scheduler.step()
                self.iteration += 1
        finally:
            run.seconds += time.perf_counter() - t0
        return run


ProgressFn = Callable[[Run], None]


def drive(trainer: Trainer, progress: Optional[ProgressFn] = None,
          should_stop: Optional[Callable[[], bool]] = None, chunk: int = 10) -> Run:
    """Step a trainer to the end (or until `should_stop()` or divergence);
    `progress(run)` after each chunk of iterations."""
    while not trainer.run.finished:
        if should_stop is not None and should_stop():
            trainer.cancel()
        trainer.step(chunk)
        if progress is not None:
            progress(trainer.run)
    return trainer.run


def run_ttt(teacher: TeacherOutput, config: TTTConfig, progress: Optional[ProgressFn] = None,
            should_stop: Optional[Callable[[], bool]] = None, chunk: int = 10) -> Run:
    """Test-time training of a fresh APM on one image, to the end (see `drive`)."""
    return drive(Trainer(teacher, config), progress, should_stop, chunk)
