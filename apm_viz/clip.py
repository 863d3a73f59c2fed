"""The CLIP teacher: open_clip's image and text towers, for test-time classification.

Image tower: one image -> its embedding in CLIP's joint image-text space (the
vector CLIP classifies with) plus the patch tokens mapped into the same space
by the tower's own projection. Text tower: class names x prompt templates ->
one unit vector per class, the mean of the prompts' normalised embeddings,
normalised again (open_clip's `build_zero_shot_classifier`).

Weight sources, in order (`weights.resolve`): a local file the user names;
the Hugging Face cache; the hub if a short probe answers; random init, with a
warning that predictions are then meaningless. Text classifiers are cached on disk
(keyed by model, weights, labels and templates): ImageNet's 80 000 prompts
take minutes on a CPU.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Optional, Union

import numpy as np
import torch

from .errors import ApmVizError
from .images import pool_to_grid
from .labels import LabelSet, templates
from .seeding import seeded
from .teachers import Normalisation, TeacherOutput
from .weights import HubFile, WeightsSource, load_weights, resolve

CLIP_RANDOM_WARNING = (
    "Random-init CLIP: no pretrained weights were found (no network, no cached or local file). "
    "Its image and text towers are random functions, so every prediction, the teacher's and the APM's, "
    "is meaningless and accuracy is at chance. Name a weights file or allow the download for the real thing."
)


class ClipWeightsSource(WeightsSource):
    """Where a CLIP's weights came from (kinds as `WeightsSource`)."""

    RANDOM_TEXT: ClassVar[str] = CLIP_RANDOM_WARNING


@dataclass(frozen=True)
class ClipSpec:
    """One CLIP on offer.

    arch: open_clip's model config name; tag: its pretrained tag (None: random
    init only); model_kwargs: overrides of the config (the small test model).
    """

    key: str
    title: str
    arch: str
    tag: Optional[str]
    model_kwargs: tuple = ()


#: A two-block CLIP with the real open_clip architecture (ViT-B/16 layout,
#: 64 wide): random init only, for tests and quick offline runs.
TINY_KWARGS = (("embed_dim", 64),
               ("vision_cfg", (("image_size", 224), ("layers", 2), ("width", 64), ("patch_size", 16),
                               ("head_width", 32))),
               ("text_cfg", (("context_length", 77), ("vocab_size", 49408), ("width", 64), ("heads", 2),
                             ("layers", 2))))

CLIP_MODELS: dict[str, ClipSpec] = {
    s.key: s for s in (
        ClipSpec("vit-b-16-openai", "CLIP ViT-B/16 (OpenAI)", "ViT-B-16-quickgelu", "openai"),
        ClipSpec("vit-l-14-openai", "CLIP ViT-L/14 (OpenAI)", "ViT-L-14-quickgelu", "openai"),
        ClipSpec("vit-l-14-laion2b", "OpenCLIP ViT-L/14 (LAION-2B)", "ViT-L-14", "laion2b_s32b_b82k"),
        ClipSpec("tiny", "tiny random CLIP (2 blocks, for tests)", "ViT-B-16", None, TINY_KWARGS),
    )
}
DEFAULT_CLIP = "vit-b-16-openai"


def _kwargs(pairs) -> dict:
    return {k: (_kwargs(v) if isinstance(v, tuple) else v) for k, v in pairs}


class _QuietRandomInit(logging.Filter):
    """open_clip logs its own 'initialized randomly' line; the weight source says it once, ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pretrained weights loaded" not in record.getMessage()


logging.getLogger().addFilter(_QuietRandomInit())


@dataclass
class ClipView:
    """CLIP's view of one image.

    teacher: a `TeacherOutput` for the APM: image (g*patch px square, what the
        APM folds), grid (g, g, D) patch tokens in the joint space, token (D,)
        the image embedding (unnormalised), pooled RGB, weight source.
    clip_image: (S, S, 3) float32 in [0, 1], the image at CLIP's input size.
    """

    teacher: TeacherOutput
    clip_image: np.ndarray

    @property
    def embedding(self) -> np.ndarray:
        return self.teacher.token


@dataclass
class TextClassifier:
    """Zero-shot classifier rows.

    weights: (C, D) float32, unit rows, one per class (template-averaged).
    logit_scale: CLIP's learned temperature (100 for the OpenAI models).
    """

    labels: LabelSet
    template_set: str
    weights: np.ndarray
    logit_scale: float
    cached: bool = False

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """(..., D) image-space vectors -> (..., C) softmax over cosine logits."""
        e = np.asarray(embeddings, dtype=np.float64)
        e = e / np.maximum(np.linalg.norm(e, axis=-1, keepdims=True), 1e-12)
        logits = self.logit_scale * (e @ self.weights.T.astype(np.float64))
        logits -= logits.max(axis=-1, keepdims=True)
        p = np.exp(logits)
        return (p / p.sum(axis=-1, keepdims=True)).astype(np.float32)


class ClipTeacher:
    """An open_clip model with its preprocessing and weight source.

    encode(image (H, W, 3) in [0, 1], square) -> ClipView.
    classifier(labels, template_set) -> TextClassifier (cached on disk).
    """

    def __init__(self, spec: ClipSpec, model: torch.nn.Module, weights: WeightsSource, weights_key: str,
                 device: str = "cpu"):
        self.spec = spec
        self.name = spec.key
        self.model = model.eval().to(device)
        self.weights = weights
        self.weights_key = weights_key
        self.device = device
        visual = model.visual
        pre = getattr(visual, "preprocess_cfg", {}) or {}
        self.size = int(visual.image_size[0])
        self.patch = int(visual.patch_size[0])
        mean = tuple(float(v) for v in pre.get("mean", (0.48145466, 0.4578275, 0.40821073)))
        std = tuple(float(v) for v in pre.get("std", (0.26862954, 0.26130258, 0.27577711)))
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)
        self.logit_scale = float(model.logit_scale.detach().exp())
        # The APM folds the image at the tower's patch, normalised as CLIP sees it; the record keeps
        # the config's own numbers (a float32 tensor would round them).
        self.normalisation = Normalisation(mean, std)

    @property
    def grid(self) -> int:
        """Patch grid side of the image tower (14 for ViT-B/16 at 224, 16 for ViT-L/14)."""
        return self.size // self.patch

    @property
    def dim(self) -> int:
        return int(self.model.visual.output_dim)

    @torch.inference_mode()
    def encode(self, clip_image: np.ndarray, apm_image: Optional[np.ndarray] = None) -> ClipView:
        """clip_image: (S, S, 3) in [0, 1] with S = self.size. apm_image: the same picture at
        grid*patch px for the APM to fold (default: resized from clip_image)."""
        s = self.size
        if clip_image.shape != (s, s, 3):
            raise ApmVizError(f"CLIP {self.name} takes a {s}x{s} RGB image, got {clip_image.shape}")
        x = torch.from_numpy(np.ascontiguousarray(clip_image)).permute(2, 0, 1).unsqueeze(0).float()
        x = ((x - self.mean) / self.std).to(self.device)
        v = self.model.visual
        # A walk through the tower's own stages (no hooks, no flags set on a shared model):
        # embed -> transformer -> ln_post and pooling -> projection into the joint space.
        tokens = v.transformer(v._embeds(x))
        pooled, patches = v._pool(tokens)
        if v.proj is not None:
            pooled, patches = pooled @ v.proj, patches @ v.proj
        g = self.grid
        grid = patches[0].reshape(g, g, -1).float().cpu().numpy()
        token = pooled[0].float().cpu().numpy()
        if apm_image is None:
            apm_image = resize_array(clip_image, g * self.patch)
        out = TeacherOutput(image=apm_image.astype(np.float32), grid=grid, token=token,
                            pooled_rgb=pool_to_grid(apm_image, g).astype(np.float32),
                            model=self.name, weights=self.weights, patch=self.patch,
                            normalisation=self.normalisation)
        return ClipView(teacher=out, clip_image=clip_image.astype(np.float32))

    def classifier(self, labels: LabelSet, template_set: str = "openai",
                   progress: Optional[Callable[[int, int], None]] = None, cache: bool = True) -> TextClassifier:
        """Template-averaged text embeddings of every class, (C, D) unit rows.

        progress(done, total) is called per batch of classes. With cache, the
        rows are read from / written to `text_cache_dir()`.
        """
        key = hashlib.sha256("|".join((self.spec.arch, str(self.spec.tag), repr(self.spec.model_kwargs),
                                       self.weights_key, labels.digest, template_set)).encode()).hexdigest()[:24]
        path = text_cache_dir() / f"{self.name}-{key}.npy"
        if cache and path.is_file():
            try:
                w = np.load(path, allow_pickle=False)
                if w.shape == (len(labels), self.dim):
                    return TextClassifier(labels, template_set, w, self.logit_scale, cached=True)
            except (OSError, ValueError):
                pass  # a damaged cache file is rebuilt
        w = self._build_classifier(labels, templates(template_set), progress)
        if cache:
            _atomic_save(path, w)
        return TextClassifier(labels, template_set, w, self.logit_scale)

    @torch.inference_mode()
    def _build_classifier(self, labels: LabelSet, prompts: tuple[str, ...],
                          progress: Optional[Callable[[int, int], None]]) -> np.ndarray:
        import open_clip
        from open_clip.zero_shot_classifier import build_zero_shot_classifier

        tokenizer = open_clip.get_tokenizer(self.spec.arch)
        per_batch = max(1, 256 // len(prompts))
        names = list(labels.names)
        parts = []
        for start in range(0, len(names), per_batch):
            chunk = names[start:start + per_batch]
            parts.append(build_zero_shot_classifier(self.model, tokenizer, chunk, list(prompts),
                                                    num_classes_per_batch=None, device=self.device).T)
            if progress is not None:
                progress(min(start + per_batch, len(names)), len(names))
        return torch.cat(parts).float().cpu().numpy()


def text_cache_dir() -> Path:
    """Where text classifiers are cached ($APM_VIZ_CACHE_DIR/text, default ~/.cache/apm-viz/text)."""
    root = Path(os.environ.get("APM_VIZ_CACHE_DIR", Path.home() / ".cache" / "apm-viz"))
    return root / "text"


def _atomic_save(path: Path, array: np.ndarray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs time


def resize_array(image: np.ndarray, size: int) -> np.ndarray:
    """(S, S, 3) float in [0, 1] -> (size, size, 3), bicubic."""
    from PIL import Image

    if image.shape[0] == size:
        return image.astype(np.float32)
    pil = Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))
    return np.asarray(pil.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0


# -- building and weights ------------------------------------------------------

def _build(spec: ClipSpec, seed: int) -> torch.nn.Module:
    import open_clip

    with seeded(seed):
        return open_clip.create_model(spec.arch, pretrained=None, **_kwargs(spec.model_kwargs))


def input_size(name: str) -> int:
    """The side S of the square picture CLIP `name` takes, from open_clip's config
    (no model is built)."""
    import open_clip

    spec = CLIP_MODELS.get(name)
    if spec is None:
        raise ApmVizError(f"unknown CLIP {name!r}; choose one of {', '.join(CLIP_MODELS)}")
    vision = dict(open_clip.get_model_config(spec.arch)["vision_cfg"])
    vision.update(_kwargs(spec.model_kwargs).get("vision_cfg", {}))
    size = vision["image_size"]
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def _hub_repo(spec: ClipSpec) -> Optional[str]:
    if spec.tag is None:
        return None
    from open_clip.pretrained import get_pretrained_cfg

    hub = (get_pretrained_cfg(spec.arch, spec.tag) or {}).get("hf_hub", "")
    return hub.rstrip("/") or None


#: File names open_clip stores CLIP weights under on the Hugging Face hub, safest first.
HUB_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def _remote(spec: ClipSpec) -> Optional[HubFile]:
    repo = _hub_repo(spec)
    return HubFile(repo, HUB_FILES) if repo else None


def _weights_key(path: Optional[Path], seed: int) -> str:
    """Names the weights for the text cache: the file and its size and time, or the seed."""
    if path is None:
        return f"random:{seed}"
    try:
        st = path.stat()
    except OSError:
        return f"file:{path}"
    return f"file:{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def _open_clip_keys(sd: dict, model: torch.nn.Module) -> dict:
    """A checkpoint in open_clip's names as its own loader accepts it: no DataParallel
    prefix, scalar or 1-element logit scale."""
    if sd and next(iter(sd)).startswith("module."):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    own = model.state_dict()
    for k in ("logit_scale", "logit_bias"):
        if k in sd and k in own and sd[k].shape != own[k].shape and sd[k].numel() == own[k].numel():
            sd[k] = sd[k].reshape(own[k].shape)
    return sd


def create_clip(name: str = DEFAULT_CLIP, weights: Union[str, os.PathLike, None] = None,
                allow_download: bool = True, seed: int = 0, device: str = "cpu") -> ClipTeacher:
    """Build a CLIP from `CLIP_MODELS` and resolve its weights.

    weights: "random" forces random init; a path loads that file (open_clip
        key names, safetensors or a plain torch state dict read with
        weights_only); None tries the Hugging Face cache, then the hub when
        allow_download and it answers, then random init seeded by `seed`.
    """
    spec = CLIP_MODELS.get(name)
    if spec is None:
        raise ApmVizError(f"unknown CLIP {name!r}; choose one of {', '.join(CLIP_MODELS)}")
    path, source = resolve(weights, _remote(spec), allow_download, seed=seed, source=ClipWeightsSource)
    model = _build(spec, seed)
    if path is not None:
        load_weights(model, path, spec.title, filter_fn=_open_clip_keys)
    return ClipTeacher(spec, model, source, _weights_key(path, seed), device)
