"""The classifiers of seeds 001, 002 and 004 (STUDIES.md §2, §3, §5): the document's parameter
counts, what is frozen, the builder contract, dropout, first convolutions and weight errors."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from trainables.models import PretrainedWeightsError, build_model

# Input (channels, side) per model: small, but InceptionResNetV2 needs at least 75x75 and the
# *_medmnist models get ChestMNIST's 1 x 28 x 28.
INPUTS = {
    "custom_cnn": (3, 32), "vgg16_frozen": (3, 32), "vgg16_finetune": (3, 32),
    "inception_resnet_v2": (3, 75), "nasnetalarge": (3, 32),
    "densenet121_medmnist": (1, 28), "efficientnet_b0_medmnist": (1, 28),
    "mobilenetv3_large_medmnist": (1, 28),
}
MEDMNIST = sorted(name for name in INPUTS if name.endswith("_medmnist"))
TORCHVISION = ["vgg16_frozen", "vgg16_finetune", *MEDMNIST]
# NASNet-A Large (85M parameters) takes one output size only, to keep the file quick.
CONTRACT = [(name, classes) for name in sorted(INPUTS) for classes in (1, 4)
            if (name, classes) != ("nasnetalarge", 4)]


def build(name: str, *, num_classes: int = 4, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    kwargs.setdefault("in_channels", INPUTS.get(name, (3,))[0])
    kwargs.setdefault("pretrained", False)
    return build_model(name, num_classes=num_classes, **kwargs)


def batch(name: str, n: int = 2) -> torch.Tensor:
    channels, side = INPUTS[name]
    return torch.randn(n, channels, side, side, generator=torch.Generator().manual_seed(1))


def count(parameters) -> int:
    return sum(p.numel() for p in parameters)


def first_conv(model: nn.Module) -> nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("name,parameters", [("custom_cnn", 127_300), ("vgg16_frozen", 14_847_044)])
def test_parameter_counts_are_the_documents(name, parameters):
    """Seed 001's counts for 3 input channels and 4 classes (VGG16 fine-tune has the same)."""
    assert count(build(name, in_channels=3).parameters()) == parameters


@pytest.mark.parametrize("name", ["vgg16_frozen", "vgg16_finetune"])
def test_vgg16_trains_only_the_head_and_for_finetune_block_5(name):
    """Also with a replaced (one-channel) first conv, which must stay frozen too."""
    classes = 4
    head = (512 * 256 + 256) + (256 * classes + classes)
    block5 = 3 * (512 * 512 * 9 + 512)
    model = build(name, num_classes=classes, in_channels=1)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    expected = head + (block5 if name == "vgg16_finetune" else 0)
    assert count(p for _, p in trainable) == expected
    prefixes = ("head.",) + (("features.24.", "features.26.", "features.28.")
                             if name == "vgg16_finetune" else ())
    assert all(n.startswith(prefixes) for n, _ in trainable)


@pytest.mark.parametrize("name,num_classes", CONTRACT)
def test_every_classifier_maps_a_batch_to_logits_and_trains_one_step(name, num_classes):
    model = build(name, num_classes=num_classes).train()
    images = batch(name)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    outputs = model(images)
    assert outputs.shape == (2, num_classes)
    loss = (F.binary_cross_entropy_with_logits(outputs[:, 0], torch.tensor([0.0, 1.0]))
            if num_classes == 1 else F.cross_entropy(outputs, torch.tensor([0, 3])))
    loss.backward()
    optimizer.step()
    after = dict(model.named_parameters())
    assert all(torch.equal(before[n], p) for n, p in after.items() if not p.requires_grad)
    assert any(not torch.equal(before[n], p) for n, p in after.items() if p.requires_grad)


@pytest.mark.parametrize("name", MEDMNIST)
def test_medmnist_models_take_one_channel_at_stride_1(name):
    conv = first_conv(build(name, in_channels=1))
    assert (conv.in_channels, conv.stride) == (1, (1, 1))


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_builders_pass_on_dropout_and_in_channels(name):
    model = build(name, dropout=0.37, in_channels=1)
    assert first_conv(model).in_channels == 1
    assert any(isinstance(m, nn.Dropout) and m.p == 0.37 for m in model.modules())


def test_timm_efficientnet_b0_passes_on_dropout_and_in_channels():
    model = build("efficientnet_b0", dropout=0.37, in_channels=1)
    assert (model.conv_stem.in_channels, model.drop_rate) == (1, 0.37)


def test_mobilenet_head_is_the_documents_with_the_second_dropout_fixed():
    head = build("mobilenetv3_large_medmnist", dropout=0.4, num_classes=1).classifier
    assert [type(m) for m in head] == [nn.Linear, nn.Hardswish, nn.Dropout, nn.Linear, nn.ReLU,
                                       nn.Dropout, nn.Linear]
    assert (head[0].in_features, head[0].out_features, head[3].out_features) == (960, 512, 256)
    assert (head[2].p, head[5].p, head[6].out_features) == (0.4, 0.3, 1)


@pytest.mark.parametrize("name", ["custom_cnn", "mobilenetv3_large_medmnist"])
def test_dropout_acts_in_training_only(name):
    model = build(name, dropout=0.9)
    images = batch(name)
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(images), model(images))
        model.train()
        assert not torch.equal(model(images), model(images))


def test_custom_cnn_trains_from_scratch_whatever_pretrained_says_and_rejects_a_weights_file():
    torch.manual_seed(0)
    scratch = build("custom_cnn", pretrained=False)
    torch.manual_seed(0)
    asked = build("custom_cnn", pretrained=True)
    assert all(torch.equal(a, b) for a, b in zip(scratch.state_dict().values(), asked.state_dict().values()))
    with pytest.raises(PretrainedWeightsError, match="leave pretrained_path unset"):
        build("custom_cnn", pretrained_path="weights.pth")


# One VGG stands for both: they share the loading code, and each build costs a second.
@pytest.mark.parametrize("name", ["vgg16_frozen", *MEDMNIST])
def test_unreachable_imagenet_weights_say_how_to_opt_out(name, monkeypatch):
    def offline(url, *args, **kwargs):
        raise OSError(f"cannot reach {url}")

    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", offline)
    with pytest.raises(PretrainedWeightsError, match=r"--set pretrained=false") as info:
        build(name, pretrained=True)
    assert "--set pretrained_path=" in str(info.value)


@pytest.mark.parametrize("name", TORCHVISION)
def test_missing_local_weights_file_is_named(name, tmp_path):
    with pytest.raises(PretrainedWeightsError, match=r"nothere\.pth does not exist"):
        build(name, pretrained_path=str(tmp_path / "nothere.pth"))


def test_a_file_that_is_not_the_models_state_dict_is_named(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(1)}, path)
    with pytest.raises(PretrainedWeightsError,
                       match=r"other\.pth is not a torchvision mobilenet_v3_large state dict"):
        build("mobilenetv3_large_medmnist", pretrained_path=str(path))


@pytest.mark.parametrize("in_channels", [1, 3])
def test_local_weights_load_and_rgb_filters_are_summed_for_one_channel(tmp_path, in_channels):
    source = torchvision.models.mobilenet_v3_large()
    path = tmp_path / "mobilenet_v3_large.pth"
    torch.save(source.state_dict(), path)
    model = build("mobilenetv3_large_medmnist", in_channels=in_channels, pretrained_path=str(path))
    rgb = source.features[0][0].weight
    expected = rgb.sum(dim=1, keepdim=True) if in_channels == 1 else rgb
    torch.testing.assert_close(model.features[0][0].weight, expected)
    assert model.features[0][0].stride == (1, 1)
    assert torch.equal(model.features[1].block[0][0].weight, source.features[1].block[0][0].weight)
