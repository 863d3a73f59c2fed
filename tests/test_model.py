import math

import numpy as np
import pytest
import torch

from apm_viz.model import APM, PRESETS, QueryLinear, get_preset, grid_coords, positional_code


def test_positional_code_values():
    coords = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    code = positional_code(coords, 16, base=10000.0)
    assert code.shape == (2, 16)
    # At the origin every sin channel is 0 and every cos channel 1.
    assert torch.allclose(code[0, 0::2], torch.zeros(8))
    assert torch.allclose(code[0, 1::2], torch.ones(8))
    # x half: frequencies 10000^(-k/8) for k = 0, 2, 4, 6.
    freqs = [10000 ** (-k / 8) for k in (0, 2, 4, 6)]
    for i, f in enumerate(freqs):
        assert code[1, 2 * i] == pytest.approx(math.sin(1.0 * f), abs=1e-6)
        assert code[1, 2 * i + 1] == pytest.approx(math.cos(1.0 * f), abs=1e-6)
        assert code[1, 8 + 2 * i] == pytest.approx(math.sin(2.0 * f), abs=1e-6)
        assert code[1, 8 + 2 * i + 1] == pytest.approx(math.cos(2.0 * f), abs=1e-6)


def test_positional_code_is_continuous():
    a = positional_code(torch.tensor([[3.0, 4.0]]), 64)
    b = positional_code(torch.tensor([[3.001, 4.0]]), 64)
    c = positional_code(torch.tensor([[4.0, 4.0]]), 64)
    assert (a - b).abs().max() < 2e-3 < (a - c).abs().max()


def test_grid_coords_scale_covers_same_extent():
    c1 = grid_coords(4, 4)
    c2 = grid_coords(4, 4, scale=2)
    assert c1.shape == (16, 2) and c2.shape == (64, 2)
    assert c1[:, 0].tolist()[:4] == [0, 1, 2, 3]
    assert c2[:, 0].min() == pytest.approx(-0.25) and c2[:, 0].max() == pytest.approx(3.25)


def test_query_linear_equals_linear_on_concatenation():
    torch.manual_seed(0)
    q = QueryLinear(trigger_dim=10, pos_dim=6, patch_dim=4, out_dim=5)
    T, pos, patches = torch.randn(2, 10), torch.randn(7, 6), torch.randn(2, 7, 4)
    full = torch.cat([T.unsqueeze(1).expand(-1, 7, -1), patches, pos.unsqueeze(0).expand(2, -1, -1)], -1)
    W = torch.cat([q.trigger.weight, q.patch.weight, q.pos.weight], 1)
    expected = full @ W.T + q.trigger.bias
    assert torch.allclose(q(q.column(T), pos, patches), expected, atol=1e-5)


@pytest.fixture(scope="module")
def apm():
    torch.manual_seed(0)
    model = APM(get_preset("laptop", local_patch=True, pooling="attention"), (8, 8), feature_dim=32).eval()
    image = torch.randn(2, 3, 8 * 14, 8 * 14)
    return model, image


def test_forward_shapes(apm):
    model, image = apm
    feats, rgb, pooled = model(image)
    assert feats.shape == (2, 64, 32) and rgb.shape == (2, 64, 3) and pooled.shape == (2, 32)
    assert float(rgb.min()) >= 0 and float(rgb.max()) <= 1


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_chunked_any_order_matches_whole(apm, chunk):
    model, image = apm
    with torch.no_grad():
        T, patches = model.fold(image), model.patches(image)
        whole, whole_rgb = model.field(T, patches=patches)
        order = torch.randperm(64, generator=torch.Generator().manual_seed(chunk))
        parts, parts_rgb = model.field(T, chunk=chunk, order=order, patches=patches)
    assert torch.allclose(whole, parts, atol=1e-5)
    assert torch.allclose(whole_rgb, parts_rgb, atol=1e-6)


def test_one_location_at_a_time_matches_whole():
    torch.manual_seed(1)
    model = APM(get_preset("laptop"), (6, 6), feature_dim=16).eval()
    T = model.fold(torch.randn(1, 3, 84, 84))
    with torch.no_grad():
        whole, _ = model.field(T)
        coords = grid_coords(6, 6)
        one = torch.cat([model.field(T, coords[i : i + 1])[0] for i in range(36)], dim=1)
    assert torch.allclose(whole, one, atol=1e-5)


def test_any_resolution_query():
    torch.manual_seed(2)
    model = APM(get_preset("laptop"), (8, 8), feature_dim=16).eval()
    T = model.fold(torch.randn(1, 3, 112, 112))
    with torch.no_grad():
        hi, rgb = model.field(T, grid_coords(8, 8, scale=2), chunk=50)
        base, _ = model.field(T)
    assert hi.shape == (1, 256, 16) and rgb.shape == (1, 256, 3)
    # Querying at the grid's own coordinates reproduces the grid field.
    with torch.no_grad():
        again, _ = model.field(T, grid_coords(8, 8))
    assert torch.allclose(again, base, atol=1e-5)
    # The 2x field is a different, denser sampling, not a copy.
    assert not torch.allclose(hi.reshape(16, 16, 16)[::2, ::2].reshape(1, 64, 16), base, atol=1e-4)


def test_paper_presets_have_paper_sizes():
    # 32x32 grid, 1024-d trigger column + 1024-d positional code = 2048-d query.
    for name, macs in (("paper", 53.5e6), ("paper-ttt", 19.7e6)):
        cfg = PRESETS[name]
        trigger = 32 * 32
        widths = (trigger + cfg.pos_dim,) + cfg.hidden + (1024,)
        per_location = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
        assert per_location == pytest.approx(macs, rel=0.03)
    model = APM(PRESETS["paper"], (32, 32), feature_dim=1024)
    field_mlp = sum(p.numel() for m in (model.first, model.hidden, model.head) for p in m.parameters())
    assert field_mlp == pytest.approx(54e6, rel=0.02)


def test_reset_parameters_redraws_weights():
    model = APM(get_preset("laptop", init_std=0.01), (4, 4), feature_dim=8)
    before = model.head.weight.clone()
    model.reset_parameters()
    assert not torch.equal(before, model.head.weight)
    assert float(model.head.weight.std()) == pytest.approx(0.01, rel=0.2)
