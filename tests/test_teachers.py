import time

import numpy as np
import pytest
import torch

from apm_viz.errors import ApmVizError
from apm_viz.teachers import create_teacher
from apm_viz.weights import hub_reachable


def test_output_shapes_and_prefix_tokens_stripped(teacher_out16, small_teacher):
    out = teacher_out16
    assert out.grid.shape == (16, 16, 384)
    assert out.token.shape == (384,)
    assert out.pooled_rgb.shape == (16, 16, 3)
    assert out.weights.kind == "random"
    # The grid holds the patch tokens only: compare with timm's own output.
    # DINOv2's normalisation as timm's pretrained_cfg gives it (ImageNet's), RGB in [0, 1].
    x = torch.from_numpy(out.image).permute(2, 0, 1)[None]
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        tokens = small_teacher.model.forward_features(x)[0].numpy()
    np.testing.assert_allclose(out.grid.reshape(256, -1), tokens[1:], atol=1e-5)
    np.testing.assert_allclose(out.token, tokens[0], atol=1e-5)


def test_registers_are_stripped(sample_path):
    from apm_viz.images import load_image
    from apm_viz.pipeline import encode

    teacher = create_teacher("dinov2-small-reg", weights="random", depth=1)
    assert teacher.model.num_prefix_tokens == 5
    assert encode(load_image(sample_path), teacher, 16).grid.shape == (16, 16, 384)


def test_offline_falls_back_to_random_quickly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.perf_counter()
    teacher = create_teacher("dinov2-small", depth=1)
    assert time.perf_counter() - t < 30  # timm alone retries ~48 s; here no network is tried
    assert teacher.weights.kind == "random"
    assert "Random-init teacher" in teacher.weights.warning
    assert not hub_reachable()


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_weights_file_round_trip(tmp_path, suffix, small_teacher):
    sd = {k: v.clone() + 0.5 for k, v in small_teacher.model.state_dict().items()}
    path = tmp_path / f"w{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(sd, str(path))
    else:
        torch.save({"model": sd}, path)
    teacher = create_teacher("dinov2-small", weights=path, depth=2)
    assert teacher.weights.kind == "local" and teacher.weights.pretrained
    assert torch.equal(teacher.model.state_dict()["cls_token"], sd["cls_token"])


def test_wrong_weights_file_is_a_clear_error(tmp_path, small_teacher):
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ApmVizError, match="not a readable weights file"):
        create_teacher("dinov2-small", weights=bad, depth=2)
    other = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(3, 3)}, other)
    with pytest.raises(ApmVizError, match="not weights for dinov2-small"):
        create_teacher("dinov2-small", weights=other, depth=2)
    deeper = tmp_path / "deeper.pth"
    torch.save(create_teacher("dinov2-small", weights="random", depth=3).model.state_dict(), deeper)
    with pytest.raises(ApmVizError, match="unexpected"):
        create_teacher("dinov2-small", weights=deeper, depth=2)


def test_the_teacher_sees_rgb_in_0_1_normalised_with_imagenet_values(teacher_out16, small_teacher, sample_path):
    import timm
    from PIL import Image

    # ImageNet's mean and std as published; timm's pretrained_cfg for DINOv2 gives the same.
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    cfg = timm.get_pretrained_cfg("vit_small_patch14_dinov2.lvd142m")
    assert tuple(cfg.mean) == mean and tuple(cfg.std) == std
    # The image it saw: RGB in [0, 1] in 8-bit steps, the file's own channel order (PIL's reading of the
    # centre square: chelsea is red-brown, R 0.58 against B 0.31, so a swap would show).
    image = teacher_out16.image
    assert image.dtype == np.float32 and image.min() >= 0 and 0.5 < image.max() <= 1
    np.testing.assert_allclose(image * 255, np.round(image * 255), atol=1e-3)
    raw = np.asarray(Image.open(sample_path).convert("RGB"), np.float64) / 255
    h, w = raw.shape[:2]
    s = min(h, w)
    centre = raw[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    np.testing.assert_allclose(image.mean(axis=(0, 1)), centre.mean(axis=(0, 1)), atol=0.01)
    # Its tokens are timm's forward of exactly that image, normalised with those values.
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        tokens = small_teacher.model.forward_features(x)[0].numpy()
    np.testing.assert_allclose(teacher_out16.grid.reshape(256, -1), tokens[1:], atol=1e-5)
    np.testing.assert_allclose(teacher_out16.token, tokens[0], atol=1e-5)
