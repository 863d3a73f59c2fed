"""ImageNet-C's 15 corruptions at severities 1-5 (Hendrycks & Dietterich, ICLR 2019).

The functions come from the `imagecorruptions` module. Its reference port,
the `imagecorruptions` 1.1.2 distribution (2020), no longer imports with
current setuptools (it needs `pkg_resources`), and with that lifted its
glass_blur (scikit-image's removed `multichannel=`) and fog (NumPy 2's removed
`np.float_`) still fail. We use `imagecorruptions-imaug` (the maintained fork,
same module name, same functions and constants). Measured here on a 224x224
photo with the same NumPy seed: 11 of the 15 give the reference's pixels
exactly; the other four differ as `FORK_NOTES` says. Every result carries an
`Applied` record naming the distribution, its version and the function that
ran, and the note where it differs from the reference port.

Corruptions are random (noise, frost crops, snow); each call is seeded, so a
row of an evaluation can be recomputed.
"""

from __future__ import annotations

import functools
import inspect
import threading
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
from PIL import Image

from .errors import ApmVizError

#: ImageNet-C's corruptions in the order of its tables (and the APM paper's Table 2).
CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
               "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
               "jpeg_compression")
GROUPS = {"noise": CORRUPTIONS[0:3], "blur": CORRUPTIONS[3:7], "weather": CORRUPTIONS[7:11],
          "digital": CORRUPTIONS[11:15]}
SEVERITIES = (1, 2, 3, 4, 5)
CLEAN = "clean"
#: Short column titles, as in the paper's Table 2.
TITLES = {"gaussian_noise": "Gauss.", "shot_noise": "Shot", "impulse_noise": "Impulse", "defocus_blur": "Defocus",
          "glass_blur": "Glass", "motion_blur": "Motion", "zoom_blur": "Zoom", "snow": "Snow", "frost": "Frost",
          "fog": "Fog", "brightness": "Bright", "contrast": "Contrast", "elastic_transform": "Elastic",
          "pixelate": "Pixelate", "jpeg_compression": "JPEG", CLEAN: "Clean"}

#: Where imagecorruptions-imaug 1.1.5 differs from the reference port 1.1.2.
FORK_NOTES = {
    "impulse_noise": "salt-and-pepper drawn from scikit-image's own generator, seeded; the reference port draws "
                     "from NumPy's global generator (same distribution, other pixels)",
    "glass_blur": "the reference's pixel shuffle compiled with numba and seeded there; the reference port fails "
                  "with current scikit-image (multichannel= was removed)",
    "fog": "the plasma fractal in float32; the reference port fails with NumPy 2 (np.float_ was removed)",
    "frost": "picks one of 6 frost pictures where the reference port picks one of the first 5",
}
#: Pixels per side ImageNet-C was made at: Resize(256), CenterCrop(224), then the corruption.
IMAGENET_C_RESIZE, IMAGENET_C_SIZE = 256, 224

_LOCK = threading.Lock()  # the functions draw from NumPy's global generator


@dataclass(frozen=True)
class Applied:
    """Exactly what was done to an image.

    name, severity: the ImageNet-C corruption asked for ("clean": nothing).
    library, version, function: the distribution and function that ran.
    seed: the seed of its random draws. note: how it differs from the
    reference port ("" where it does not, as measured).
    """

    name: str
    severity: int
    library: str = ""
    version: str = ""
    function: str = ""
    seed: int = 0
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def label(self) -> str:
        if self.name == CLEAN:
            return "clean"
        return f"{self.name} {self.severity} ({self.library} {self.version}, {self.function})"


def _module():
    try:
        import imagecorruptions
    except ImportError as err:
        raise ApmVizError(f"corruptions need the imagecorruptions-imaug package (pip install "
                          f"imagecorruptions-imaug): {str(err).splitlines()[0]}") from None
    return imagecorruptions


@functools.lru_cache(maxsize=1)
def library() -> tuple[str, str]:
    """(distribution, version) that provides the `imagecorruptions` module here."""
    from importlib import metadata

    _module()
    dists = metadata.packages_distributions().get("imagecorruptions") or ["imagecorruptions"]
    name = "imagecorruptions-imaug" if "imagecorruptions-imaug" in dists else dists[0]
    return name, metadata.version(name)


def parse(spec: Optional[str]) -> list[str]:
    """'clean'/'none'/None, 'all', a group (noise, blur, weather, digital), a name,
    or a comma list of these -> corruption names (CLEAN for none), in table order."""
    if spec is None or not str(spec).strip():
        return [CLEAN]
    out: list[str] = []
    for part in (p.strip().lower() for p in str(spec).split(",") if p.strip()):
        if part in ("none", CLEAN):
            names = [CLEAN]
        elif part == "all":
            names = list(CORRUPTIONS)
        elif part in GROUPS:
            names = list(GROUPS[part])
        elif part in CORRUPTIONS:
            names = [part]
        else:
            raise ApmVizError(f"unknown corruption {part!r}; use all, clean, a group ({', '.join(GROUPS)}) or "
                              f"one of {', '.join(CORRUPTIONS)}")
        out += [n for n in names if n not in out]
    order = (CLEAN, *CORRUPTIONS)
    return sorted(out, key=order.index)


def parse_severities(spec) -> list[int]:
    """'5', '1,3,5' or 'all' -> severities."""
    text = str(spec).strip().lower()
    if text == "all":
        return list(SEVERITIES)
    try:
        values = sorted({int(p) for p in text.split(",") if p.strip()})
    except ValueError:
        values = []
    if not values or any(v not in SEVERITIES for v in values):
        raise ApmVizError(f"severity must be 1 to 5 (or a comma list, or all), got {spec!r}")
    return values


def imagenet_c_frame(img: Image.Image) -> np.ndarray:
    """The frame ImageNet-C corrupts: square centre crop, resize to 256, centre 224. -> (224, 224, 3) uint8."""
    from .images import square_crop

    sq = square_crop(img.convert("RGB")).resize((IMAGENET_C_RESIZE, IMAGENET_C_RESIZE), Image.Resampling.BILINEAR)
    off = (IMAGENET_C_RESIZE - IMAGENET_C_SIZE) // 2
    return np.asarray(sq.crop((off, off, off + IMAGENET_C_SIZE, off + IMAGENET_C_SIZE)), dtype=np.uint8)


def corrupt(image: np.ndarray, name: str, severity: int, seed: int = 0) -> tuple[np.ndarray, Applied]:
    """Apply one ImageNet-C corruption.

    image: (H, W, 3) uint8, H and W at least 32 (ImageNet-C: 224x224, see
    `imagenet_c_frame`). Returns the corrupted (H, W, 3) uint8 image and the
    `Applied` record. name CLEAN returns the image unchanged.
    """
    if name == CLEAN:
        return image, Applied(CLEAN, 0)
    if name not in CORRUPTIONS:
        raise ApmVizError(f"unknown corruption {name!r}; choose one of {', '.join(CORRUPTIONS)}")
    if int(severity) not in SEVERITIES:
        raise ApmVizError(f"severity must be 1 to 5, got {severity!r}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 32:
        raise ApmVizError(f"corruptions take an (H, W, 3) uint8 image of at least 32x32, got {image.shape} "
                          f"{image.dtype}")
    ic = _module()
    fn = ic.corruption_dict[name]
    extra = {"seed": int(seed)} if "seed" in inspect.signature(fn).parameters else {}
    with _LOCK:
        state = np.random.get_state()
        np.random.seed(int(seed) % 2**32)
        try:
            out = ic.corrupt(np.ascontiguousarray(image), severity=int(severity), corruption_name=name, **extra)
        except Exception as err:  # a library failure names the corruption, in one line
            raise ApmVizError(f"{name} {severity} failed in {library()[0]}: "
                              f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}") from None
        finally:
            np.random.set_state(state)
    out = np.asarray(out)
    if out.shape != image.shape:  # the fork returns the input's shape; a crop would change what CLIP sees
        raise ApmVizError(f"{name} {severity} returned shape {out.shape} for an image of {image.shape}")
    dist, version = library()
    note = FORK_NOTES.get(name, "") if dist == "imagecorruptions-imaug" else ""
    return out.astype(np.uint8), Applied(name, int(severity), dist, version, f"{fn.__module__}.{fn.__name__}",
                                         int(seed), note)
