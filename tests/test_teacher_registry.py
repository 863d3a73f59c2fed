"""The teacher registry: every family at random init, against timm itself.

Expected patch sizes, widths, prefix tokens and normalisations are literals
read off timm 1.0.31's model definitions and pretrained configs (ImageNet's
mean/std for DINOv2/v3, 0.5 for SigLIP, OpenAI's for CLIP), not from our code.
"""

import numpy as np
import pytest
import torch

from apm_viz.errors import ApmVizError
from apm_viz.images import load_image
from apm_viz.pipeline import encode
from apm_viz.teachers import FAMILIES, TEACHERS, Normalisation, create_teacher, describe
from apm_viz.ttt import Trainer, TTTConfig, run_ttt

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
SIGLIP = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
OPENAI = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))

#: name -> (timm model, family, patch, width, prefix tokens, (mean, std))
EXPECTED = {
    "dinov2-small": ("vit_small_patch14_dinov2.lvd142m", "DINOv2", 14, 384, 1, IMAGENET),
    "dinov2-base": ("vit_base_patch14_dinov2.lvd142m", "DINOv2", 14, 768, 1, IMAGENET),
    "dinov2-large": ("vit_large_patch14_dinov2.lvd142m", "DINOv2", 14, 1024, 1, IMAGENET),
    "dinov2-giant": ("vit_giant_patch14_dinov2.lvd142m", "DINOv2", 14, 1536, 1, IMAGENET),
    "dinov2-small-reg": ("vit_small_patch14_reg4_dinov2.lvd142m", "DINOv2 with registers", 14, 384, 5, IMAGENET),
    "dinov2-base-reg": ("vit_base_patch14_reg4_dinov2.lvd142m", "DINOv2 with registers", 14, 768, 5, IMAGENET),
    "dinov2-large-reg": ("vit_large_patch14_reg4_dinov2.lvd142m", "DINOv2 with registers", 14, 1024, 5, IMAGENET),
    "dinov2-giant-reg": ("vit_giant_patch14_reg4_dinov2.lvd142m", "DINOv2 with registers", 14, 1536, 5, IMAGENET),
    "dinov3-small": ("vit_small_patch16_dinov3.lvd1689m", "DINOv3", 16, 384, 5, IMAGENET),
    "dinov3-small-plus": ("vit_small_plus_patch16_dinov3.lvd1689m", "DINOv3", 16, 384, 5, IMAGENET),
    "dinov3-base": ("vit_base_patch16_dinov3.lvd1689m", "DINOv3", 16, 768, 5, IMAGENET),
    "dinov3-large": ("vit_large_patch16_dinov3.lvd1689m", "DINOv3", 16, 1024, 5, IMAGENET),
    "siglip2-base": ("vit_base_patch16_siglip_256.v2_webli", "SigLIP 2", 16, 768, 0, SIGLIP),
    "siglip2-large": ("vit_large_patch16_siglip_256.v2_webli", "SigLIP 2", 16, 1024, 0, SIGLIP),
    "clip-b16": ("vit_base_patch16_clip_quickgelu_224.openai", "CLIP image tower", 16, 768, 1, OPENAI),
    "clip-l14": ("vit_large_patch14_clip_quickgelu_224.openai", "CLIP image tower", 14, 1024, 1, OPENAI),
}
#: One small teacher per family for the forward tests.
ONE_PER_FAMILY = ["dinov2-small", "dinov2-small-reg", "dinov3-small", "siglip2-base", "clip-b16"]


def test_the_registry_is_the_expected_one():
    assert list(TEACHERS) == list(EXPECTED)
    assert {c.family_info.name for c in TEACHERS.values()} == {f.name for f in FAMILIES.values()}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_name_is_a_pretrained_timm_model(name):
    import timm

    assert TEACHERS[name].timm_name == EXPECTED[name][0]
    assert EXPECTED[name][0] in timm.list_models(pretrained=True)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_sizes_and_normalisation_come_from_timm(name):
    _, family, patch, width, prefix, (mean, std) = EXPECTED[name]
    info = describe(name)
    assert (info.config.family_info.name, info.patch, info.dim, info.prefix_tokens) == (family, patch, width, prefix)
    assert info.normalisation == Normalisation(mean, std)
    assert (info.pixels(16), info.pixels(32)) == {14: (224, 448), 16: (256, 512)}[patch]
    assert info.local is None  # the test session's caches and weights folder are empty


def test_unknown_name_is_one_line():
    with pytest.raises(ApmVizError, match=r"^unknown teacher 'dinov4-small'; choose one of dinov2-small, "):
        create_teacher("dinov4-small")


# -- forward passes, one small random-init model per family ---------------------------------

@pytest.fixture(scope="module", params=ONE_PER_FAMILY)
def family_teacher(request):
    return create_teacher(request.param, weights="random", depth=1, seed=3)


@pytest.fixture(scope="module")
def chelsea(sample_path):
    return load_image(sample_path)


def _timm_tokens(teacher, image: np.ndarray, mean, std) -> torch.Tensor:
    """timm's own forward of `image` normalised with the given literals: (1, prefix + N, D)."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        return teacher.model.forward_features(x)


def test_grid_is_the_patch_tokens_and_the_global_vector_is_the_familys(family_teacher, chelsea):
    name = family_teacher.name
    _, _, patch, width, prefix, (mean, std) = EXPECTED[name]
    out = encode(chelsea, family_teacher, 16)
    assert out.image.shape == (16 * patch, 16 * patch, 3)
    assert out.grid.shape == (16, 16, width) and out.token.shape == (width,)
    assert out.pooled_rgb.shape == (16, 16, 3) and out.patch == patch
    tokens = _timm_tokens(family_teacher, out.image, mean, std)
    assert tokens.shape[1] == prefix + 256
    np.testing.assert_allclose(out.grid.reshape(256, -1), tokens[0, prefix:].numpy(), atol=1e-4)
    if TEACHERS[name].family_info.global_vector == "map":
        with torch.no_grad():
            pooled = family_teacher.model.attn_pool(tokens)  # SigLIP's attention-pooling head
        np.testing.assert_allclose(out.token, family_teacher.model.fc_norm(pooled)[0].numpy(), atol=1e-4)
        assert not np.allclose(out.token, out.grid.reshape(256, -1).mean(0), atol=1e-3)
    else:
        np.testing.assert_allclose(out.token, tokens[0, 0].numpy(), atol=1e-4)


def test_normalisation_is_the_familys_own(family_teacher, chelsea):
    """With another family's normalisation the grid differs: this test would catch one."""
    name = family_teacher.name
    mean, std = EXPECTED[name][5]
    out = encode(chelsea, family_teacher, 16)
    assert out.normalisation == Normalisation(mean, std)
    for other_mean, other_std in {IMAGENET, SIGLIP, OPENAI} - {(mean, std)}:
        wrong = _timm_tokens(family_teacher, out.image, other_mean, other_std)[0, EXPECTED[name][4]:]
        assert not np.allclose(out.grid.reshape(256, -1), wrong.numpy(), atol=1e-3)


@pytest.mark.parametrize("grid", [16, 32])
def test_the_apm_follows_the_teachers_patch(family_teacher, chelsea, grid):
    patch = EXPECTED[family_teacher.name][2]
    out = encode(chelsea, family_teacher, grid)
    assert out.image.shape[0] == grid * patch and out.grid.shape[:2] == (grid, grid)
    trainer = Trainer(out, TTTConfig(iters=1, local_patch=True))
    fold = trainer.model.fold_conv
    assert fold.kernel_size == (patch, patch) and fold.stride == (patch, patch)
    assert trainer.model.patches(trainer.image).shape == (1, grid * grid, 3 * patch * patch)  # I_xy
    assert trainer.model.fold(trainer.image).shape == (1, grid * grid)


def test_a_short_ttt_run(family_teacher, chelsea):
    out = encode(chelsea, family_teacher, 16)
    run = run_ttt(out, TTTConfig(loss="grid", iters=4, lr=1e-3, snapshots=(0, 4)))
    assert run.status == "done" and [s.iteration for s in run.snapshots] == [0, 4]
    assert run.snapshots[-1].field.shape == out.grid.shape
    assert np.isfinite([v for _, v in run.losses]).all() and run.losses[-1][1] < run.losses[0][1]
    assert run.teacher_model == family_teacher.name


def test_siglip_has_no_class_token_to_strip(chelsea):
    teacher = create_teacher("siglip2-base", weights="random", depth=1)
    assert teacher.prefix_tokens == 0 and teacher.family.global_vector == "map"
    assert encode(chelsea, teacher, 16).global_vector == "map"


# -- DINOv3's gated weights: Meta's own file, mapped by timm's checkpoint filter ---------------

def meta_layout(timm_state: dict, depth: int) -> dict:
    """A timm DINOv3 state dict written back in the key layout of Meta's released
    checkpoints (as timm's eva.checkpoint_filter_fn reads them): register tokens
    called storage_tokens, LayerScale as ls1/ls2.gamma, a mask token, the RoPE
    periods buffer, and a fused qkv bias with its mask."""
    out = {}
    for k, v in timm_state.items():
        k = k.replace("reg_token", "storage_tokens").replace("gamma_1", "ls1.gamma").replace("gamma_2", "ls2.gamma")
        out[k] = v.clone()
    d = timm_state["cls_token"].shape[-1]
    out["mask_token"] = torch.zeros(1, d)
    out["rope_embed.periods"] = torch.arange(1, 17, dtype=torch.float32)
    for i in range(depth):
        out[f"blocks.{i}.attn.qkv.bias"] = torch.zeros(3 * d)  # ViT-S/16's biases are zero: timm has none
        out[f"blocks.{i}.attn.qkv.bias_mask"] = torch.ones(3 * d)
    return out


@pytest.fixture(scope="module")
def official_dinov3(tmp_path_factory):
    """Meta's file name and key layout, made from a random-init model (seed 1)."""
    source = create_teacher("dinov3-small", weights="random", depth=2, seed=1)
    sd = meta_layout(source.model.state_dict(), depth=2)
    assert "storage_tokens" in sd and "reg_token" not in sd and "blocks.0.ls1.gamma" in sd
    folder = tmp_path_factory.mktemp("meta")
    path = folder / "dinov3_vits16_pretrain_lvd1689m-08c60483.pth"
    torch.save(sd, path)
    return source, path


def test_meta_dinov3_file_loads_through_timms_filter(official_dinov3, chelsea):
    source, path = official_dinov3
    teacher = create_teacher("dinov3-small", weights=path, depth=2, seed=0)
    assert teacher.weights.kind == "local" and teacher.weights.detail == str(path)
    for k, v in source.model.state_dict().items():
        assert torch.equal(teacher.model.state_dict()[k], v), k
    np.testing.assert_array_equal(encode(chelsea, teacher, 16).grid, encode(chelsea, source, 16).grid)


def test_meta_dinov3_file_in_the_weights_folder_is_found(official_dinov3, tmp_path, monkeypatch):
    source, path = official_dinov3
    (tmp_path / path.name).write_bytes(path.read_bytes())
    monkeypatch.setenv("APM_VIZ_WEIGHTS_DIR", str(tmp_path))
    assert describe("dinov3-small").local == f"weights folder: {path.name}"
    assert describe("dinov3-base").local is None  # another model's name does not match
    teacher = create_teacher("dinov3-small", depth=2, seed=0, allow_download=False)
    assert teacher.weights.kind == "local" and teacher.weights.detail == str(tmp_path / path.name)
    assert torch.equal(teacher.model.cls_token, source.model.cls_token)


def test_a_file_of_another_size_is_one_line(official_dinov3):
    _, path = official_dinov3
    with pytest.raises(ApmVizError) as err:
        create_teacher("dinov3-small", weights=path, depth=3)
    assert str(err.value).startswith(f"{path.name}: not weights for dinov3-small: ") and "\n" not in str(err.value)


def test_a_finished_runs_apm_is_rebuilt_at_the_teachers_patch(chelsea):
    """The pages query the APM a worker sent back (`jobs.load_model`): at patch 16 its fold must be 16x16."""
    from apm_viz.jobs import load_model, model_weights

    out = encode(chelsea, create_teacher("dinov3-small", weights="random", depth=1), 16)
    config = TTTConfig(iters=1, local_patch=True)
    trainer = Trainer(out, config)
    model = load_model(config, 16, out.grid.shape[-1], model_weights(trainer.model), out.patch)
    assert model.fold_conv.kernel_size == (16, 16)
    x = out.input_tensor()
    with torch.no_grad():
        assert torch.equal(model.fold(x), trainer.model.eval().fold(x))
