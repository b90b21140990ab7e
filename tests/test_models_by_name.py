"""Models by name: a classification study may name any timm model (registered medsweep names
first), a segmentation study only the U-Nets, a detection study only the R-CNN backbones; an
unknown name is an error naming the key, the value and its near matches, before Ray starts."""

from __future__ import annotations

import pytest
import timm
import torch
import yaml

import sweeps.sweep
from search_spaces import search_space_path
from sweeps.registry import get_sweep
from sweeps.run import main
from sweeps.space import resolve
from sweeps.study_file import StudyFileError, load_study
from trainables.classification import ClassificationConfig
from trainables.config import ConfigError, from_config
from trainables.detection import DetectionConfig
from trainables.errors import PretrainedWeightsError, SearchSpaceError, UnknownNameError
from trainables.models import (
    MODELS,
    UnknownModelError,
    build_model,
    check_model_name,
    model_builder,
    model_names,
    registered_models,
)
from trainables.registries import Registry

SEGMENTATION_MODELS = "valid segmentation models: unet, unet_fpn, unet_fpn_gelu"


@pytest.mark.parametrize("name", ["resnet18", "convnext_atto"])
def test_a_timm_name_not_registered_builds_a_classifier_for_the_data(name):
    assert name not in MODELS
    model = build_model(name, num_classes=3, in_channels=1, pretrained=False, dropout=0.25).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 32, 32)).shape == (1, 3)
    assert model.drop_rate == 0.25


def test_registered_names_keep_priority_over_timms():
    assert timm.is_model("efficientnet_b0")
    assert model_builder("efficientnet_b0") is MODELS.get("efficientnet_b0")
    names = model_names("classification")
    assert names[:len(registered_models("classification"))] == registered_models("classification")
    assert "resnet18" in names and len(names) == len(set(names))


def test_a_timm_model_loads_a_local_weights_file(tmp_path):
    source = timm.create_model("convnext_atto", pretrained=False, num_classes=1000)
    path = tmp_path / "convnext_atto.pth"
    torch.save(source.state_dict(), path)
    model = build_model("convnext_atto", num_classes=3, pretrained=True, pretrained_path=str(path))
    assert torch.equal(model.stem[0].weight, source.stem[0].weight)
    assert model.get_classifier().out_features == 3


def test_unavailable_imagenet_weights_of_a_timm_model_say_how_to_opt_out(monkeypatch):
    def offline(*args, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("hub unreachable")
        return torch.nn.Identity()

    monkeypatch.setattr("trainables.models.classifiers.timm.create_model", offline)
    with pytest.raises(PretrainedWeightsError, match=r"resnet18 .*--set pretrained=false"):
        build_model("resnet18", num_classes=3, pretrained=True)


@pytest.mark.parametrize("typo, meant", [("resnet_18", "resnet18"), ("efficentnet_b0", "efficientnet_b0")])
def test_a_typo_names_the_key_the_value_and_its_near_matches(typo, meant):
    with pytest.raises(UnknownModelError) as info:
        ClassificationConfig(model=typo)
    message = str(info.value)
    near = message.split("near matches: ")[1].split(";")[0].split(", ")
    assert message.startswith(f"config key 'model': unknown classification model {typo!r}; near matches: ")
    assert meant in near and len(near) <= 5
    assert "any timm model name (timm.list_models()) or one of: efficientnet_b0, custom_cnn" in message
    assert info.value.key == "model" and isinstance(info.value, (ConfigError, UnknownNameError))
    with pytest.raises(UnknownNameError, match=f"unknown model {typo!r}; near matches: .*{meant}") as info:
        build_model(typo, num_classes=3)
    near = str(info.value).split("near matches: ")[1].split(";")[0].split(", ")
    assert len(near) == len(set(near))


def test_a_segmentation_model_must_be_a_unet():
    with pytest.raises(UnknownModelError, match=f"'resnet18'; {SEGMENTATION_MODELS} "
                                                r"\('resnet18' is a classification model\)"):
        check_model_name("segmentation", "resnet18")
    check_model_name("segmentation", "unet_fpn")
    with pytest.raises(UnknownModelError, match="unknown classification model 'unet'"):
        check_model_name("classification", "unet")


def test_a_segmentation_study_file_naming_a_timm_model_is_refused(tmp_path):
    doc = yaml.safe_load(search_space_path("all_unet.yaml").read_text(encoding="utf-8"))
    doc["grid"]["model"] = ["unet", "resnet18"]
    path = tmp_path / "unet_study.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    with pytest.raises(StudyFileError) as info:
        load_study(path)
    assert str(info.value).startswith(f"{path}: grid.model[1]: unknown segmentation model 'resnet18'; "
                                      f"{SEGMENTATION_MODELS}")


def test_a_classification_study_file_may_name_any_timm_model(tmp_path):
    doc = yaml.safe_load(search_space_path("bccd_imbalance.yaml").read_text(encoding="utf-8"))
    doc["fixed"]["model"] = "convnext_atto"
    path = tmp_path / "timm_study.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    resolved = resolve(load_study(path), profile="cpu", smoke=True, path=path)
    assert resolved.fixed["model"] == "convnext_atto"


def test_an_unknown_detection_backbone_lists_its_near_matches():
    with pytest.raises(UnknownModelError, match="config key 'backbone': unknown detection backbone 'resnet5'; "
                                                "near matches: resnet50"):
        from_config(DetectionConfig, {"backbone": "resnet5"})
    assert model_names("detection") == ["resnet50", "resnet101"]


def test_an_unknown_task_lists_the_tasks():
    with pytest.raises(UnknownNameError, match="unknown task 'segmentaion'; near matches: segmentation"):
        model_names("segmentaion")


def test_every_registry_lists_near_matches_before_the_valid_names():
    registry = Registry("colour", entries={"red": 1, "blue": 2})
    with pytest.raises(UnknownNameError, match="^unknown colour 'bleu'; near matches: blue; valid colours: blue, red$"):
        registry.get("bleu")
    with pytest.raises(UnknownNameError, match="^unknown colour 'x'; valid colours: blue, red$"):
        registry.get("x")


def test_a_timm_name_resolves_and_a_typo_fails_naming_the_set_item():
    spec = get_sweep("bccd_imbalance")
    assert resolve(spec, profile="cpu", smoke=True, overrides=("model=resnet18",)).fixed["model"] == "resnet18"
    with pytest.raises(SearchSpaceError, match="^--set model=resnet_18: config key 'model': unknown classification "
                                          "model 'resnet_18'; near matches: resnet18"):
        resolve(spec, profile="cpu", smoke=True, overrides=("model=resnet_18",))


def test_a_timm_name_set_on_a_segmentation_study_is_refused_while_resolving():
    with pytest.raises(SearchSpaceError, match=f"^--set model=resnet18: .*'resnet18'; {SEGMENTATION_MODELS}"):
        resolve(get_sweep("all_unet"), profile="cpu", smoke=True, overrides=("model=resnet18",))


def test_an_unknown_model_on_the_command_line_exits_2_before_the_audit_and_ray(monkeypatch, capsys, tmp_path):
    def refused(*args, **kwargs):
        raise AssertionError("the data audit ran or Ray was asked to start")

    monkeypatch.setattr(sweeps.sweep, "ensure_ray", refused)
    monkeypatch.setattr(sweeps.sweep, "prepare_sweep_data", refused)
    assert main(["bccd_imbalance", "--smoke", "--set", "model=resnet_18", "--storage", str(tmp_path / "runs")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(
        "error: --set model=resnet_18: config key 'model': unknown classification model 'resnet_18'; "
        "near matches: resnet18"), lines
    assert not (tmp_path / "runs").exists()
