"""The three U-Net variants of seed 004 (STUDIES.md §6): shapes, errors, where they differ, dropout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainables.models.unet import UNet, unet, unet_fpn, unet_fpn_gelu

BUILDERS = {"unet": unet, "unet_fpn": unet_fpn, "unet_fpn_gelu": unet_fpn_gelu}
SMALL = 8


def small(name: str, **kwargs) -> UNet:
    torch.manual_seed(0)
    return BUILDERS[name](base_channels=SMALL, **kwargs)


def is_activation(module: nn.Module) -> bool:
    return type(module).__module__ == "torch.nn.modules.activation"


def in_fpn(name: str) -> bool:
    return name == "fpn" or name.startswith("fpn.")


def structure(model: nn.Module, *, fpn: bool) -> list[tuple[str, type]]:
    return [(name, type(module)) for name, module in model.named_modules()
            if in_fpn(name) == fpn]


def batchnorm_eval(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()


@pytest.mark.parametrize("name", BUILDERS)
@pytest.mark.parametrize("size", [(32, 32), (16, 48), (48, 32)])
def test_output_has_the_input_spatial_shape(name, size):
    model = small(name, num_classes=2).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 2, *size)
    assert torch.isfinite(out).all()


def test_shallower_depth_accepts_smaller_multiples():
    model = UNet(base_channels=SMALL, depth=2, fpn=True).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 12, 20)).shape == (1, 1, 12, 20)


@pytest.mark.parametrize("name", BUILDERS)
@pytest.mark.parametrize("size", [(30, 32), (32, 40)])
def test_non_divisible_size_is_a_clear_error(name, size):
    with pytest.raises(ValueError, match=rf"divisible by 16.*{size[0]}, {size[1]}"):
        small(name)(torch.randn(1, 3, *size))


@pytest.mark.parametrize("kwargs, message", [
    ({"dropout": 1.0}, "dropout must be in"),
    ({"dropout": -0.1}, "dropout must be in"),
    ({"fpn": True, "fpn_activation": "swish"}, "unknown fpn_activation 'swish'; valid: relu, gelu"),
    ({"depth": 0}, "must be positive"),
])
def test_invalid_settings_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UNet(base_channels=SMALL, **kwargs)


def test_builders_pass_num_classes_and_dropout():
    model = small("unet_fpn_gelu", num_classes=3, dropout=0.2)
    assert model.head.out_channels == 3
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout2d)]
    assert len(dropouts) == 2 * model.depth + 1
    assert all(m.p == 0.2 for m in dropouts)
    assert model.encoder[0][0].out_channels == SMALL


def test_plain_unet_keys_are_the_fpn_keys_outside_fpn():
    plain, fpn = small("unet").state_dict(), small("unet_fpn").state_dict()
    fpn_keys = [k for k in fpn if k.startswith("fpn.")]
    assert fpn_keys
    assert list(plain) == [k for k in fpn if not k.startswith("fpn.")]
    assert all(plain[k].shape == fpn[k].shape for k in plain)


def test_fpn_variants_have_identical_keys_and_shapes():
    relu, gelu = small("unet_fpn").state_dict(), small("unet_fpn_gelu").state_dict()
    assert list(relu) == list(gelu)
    assert all(relu[k].shape == gelu[k].shape for k in relu)


def test_variants_share_their_structure_outside_fpn():
    models = [small(name) for name in BUILDERS]
    outside = [structure(model, fpn=False) for model in models]
    assert outside[0] == outside[1] == outside[2]
    assert models[0].fpn is None


def test_fpn_variants_differ_only_in_relu_versus_gelu():
    model = small("unet_fpn_gelu")
    relu = structure(small("unet_fpn"), fpn=True)
    gelu = structure(model, fpn=True)
    swapped = [(name, nn.GELU if kind is nn.ReLU else kind) for name, kind in relu]
    assert gelu == swapped
    assert sum(kind is nn.GELU for _, kind in gelu) == model.depth


@pytest.mark.parametrize("name", BUILDERS)
def test_gelu_only_inside_the_fpn_of_the_gelu_variant(name):
    model = small(name)
    activations = [(n, m) for n, m in model.named_modules() if is_activation(m)]
    outside = [m for n, m in activations if not in_fpn(n)]
    inside = [m for n, m in activations if in_fpn(n)]
    assert outside and all(type(m) is nn.ReLU for m in outside)
    expected_inside = {"unet": None, "unet_fpn": nn.ReLU, "unet_fpn_gelu": nn.GELU}[name]
    if expected_inside is None:
        assert inside == []
    else:
        assert inside and all(type(m) is expected_inside for m in inside)
    gelus = [n for n, m in model.named_modules() if isinstance(m, nn.GELU)]
    assert all(in_fpn(n) for n in gelus)
    assert bool(gelus) == (name == "unet_fpn_gelu")


@pytest.mark.parametrize("target", ["unet_fpn", "unet_fpn_gelu"])
def test_unet_weights_load_into_the_fpn_variants(target):
    plain, fpn = small("unet"), small(target)
    torch.manual_seed(1)
    for p in plain.parameters():
        p.data.normal_()
    result = fpn.load_state_dict(plain.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys and all(k.startswith("fpn.") for k in result.missing_keys)
    loaded = fpn.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in plain.state_dict().items())


def test_fpn_changes_the_decoder_skips():
    plain, fpn = small("unet").eval(), small("unet_fpn").eval()
    fpn.load_state_dict(plain.state_dict(), strict=False)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(plain(x), fpn(x))


@pytest.mark.parametrize("name", BUILDERS)
def test_dropout_zero_is_deterministic_in_train_mode(name):
    model = small(name, dropout=0.0).train()
    batchnorm_eval(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("name", BUILDERS)
def test_dropout_is_random_in_train_mode_and_off_in_eval(name):
    model = small(name, dropout=0.4).train()
    batchnorm_eval(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(model(x), model(x))
        torch.manual_seed(7)
        first = model(x)
        torch.manual_seed(7)
        assert torch.equal(first, model(x))
        model.eval()
        assert torch.equal(model(x), model(x))
        assert torch.equal(model(x), model(x))
        without = small(name, dropout=0.0).eval()
        without.load_state_dict(model.state_dict())
        assert torch.allclose(model(x), without(x))


@pytest.mark.parametrize("name", BUILDERS)
def test_one_adam_step_is_finite_and_moves_every_parameter(name):
    model = small(name, dropout=0.2).train()
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(2, 3, 32, 32)
    mask = (torch.rand(2, 1, 32, 32) > 0.5).float()
    loss = nn.BCEWithLogitsLoss()(model(x), mask)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    optimizer.step()
    for key, value in model.named_parameters():
        assert torch.isfinite(value).all(), key
        assert not torch.equal(value, before[key]), f"{key} did not change"


def test_parameter_counts_at_base_width_32():
    counts = {name: sum(p.numel() for p in builder(base_channels=32).parameters())
              for name, builder in BUILDERS.items()}
    print("parameter counts at base_channels=32, depth=4:", counts)
    assert all(count > 0 for count in counts.values())
    fpn_only = sum(p.numel() for p in unet_fpn(base_channels=32).fpn.parameters())
    assert counts["unet_fpn"] == counts["unet_fpn_gelu"] == counts["unet"] + fpn_only
