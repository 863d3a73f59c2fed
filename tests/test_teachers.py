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
    x = torch.from_numpy(out.image).permute(2, 0, 1)[None]
    x = (x - small_teacher.mean) / small_teacher.std
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
