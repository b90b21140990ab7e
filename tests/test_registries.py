"""Contract tests over every registry: names resolve, unknown names list the valid ones,
every sweep's space resolves in every profile, every model builds and trains one CPU step."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from sweeps.registry import SWEEPS, get_sweep
from sweeps.space import resolve
from sweeps.spec import GPU_TRIAL_OR_ONE_CPU, AshaSettings, SweepSpec
from trainables.augment import AUGMENTATIONS, build_augmentation
from trainables.datasets import DATASETS, get_dataset_entry
from trainables.models import MODELS, PretrainedWeightsError, build_model, timm_model
from trainables.registries import Registry
from trainables.registry import TRAINABLES, get_trainable


def test_every_registry_is_a_registry_of_its_kind():
    from analysis.sections import SECTIONS
    registries = {"sweep": SWEEPS, "trainable": TRAINABLES, "dataset": DATASETS, "model": MODELS,
                  "augmentation": AUGMENTATIONS, "report section": SECTIONS}
    for kind, registry in registries.items():
        assert isinstance(registry, Registry) and registry.kind == kind and len(registry) > 0


@pytest.mark.parametrize("lookup,registry,kind", [
    (get_sweep, SWEEPS, "sweep"), (get_dataset_entry, DATASETS, "dataset"),
    (get_trainable, TRAINABLES, "trainable"),
    (lambda n: build_model(n, num_classes=2), MODELS, "model"),
    (build_augmentation, AUGMENTATIONS, "augmentation")])
def test_unknown_names_list_the_valid_ones(lookup, registry, kind):
    with pytest.raises(KeyError) as info:
        lookup("no_such_thing")
    message = info.value.args[0]
    assert f"unknown {kind} 'no_such_thing'" in message
    assert all(name in message for name in registry)


def test_a_sweeps_search_space_mode_asha_and_resources_default_from_its_name_and_metric():
    spec = SweepSpec(name="new_study", study="A study", study_tag="new", trainable="classification",
                     metric="val_loss")
    assert (spec.search_space, spec.mode) == ("new_study.yaml", "min")
    assert spec.asha == AshaSettings(grace_period=10, reduction_factor=3)
    assert spec.resources == GPU_TRIAL_OR_ONE_CPU
    assert [name for name in SWEEPS] == [spec.name for spec in SWEEPS.values()]
    assert all(spec.search_space == f"{spec.name}.yaml" for spec in SWEEPS.values())


@pytest.mark.parametrize("name", sorted(SWEEPS))
@pytest.mark.parametrize("profile,smoke", [("full", False), ("cpu", False), ("cpu", True)])
def test_every_sweep_resolves_in_every_profile(name, profile, smoke):
    spec = get_sweep(name)
    resolved = resolve(spec, profile=profile, smoke=smoke)
    assert resolved.grid_size >= 1
    assert resolved.data.dataset in DATASETS
    assert spec.trainable in TRAINABLES
    for config in resolved.configs():
        assert config.get("model", "efficientnet_b0") in MODELS
        assert config.get("augment", "none") in AUGMENTATIONS
    assert set(spec.group_by) <= set(resolved.grid) | set(resolved.fixed)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_builds_and_runs_one_cpu_step(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=3, pretrained=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    side = 75 if name == "inception_resnet_v2" else 32   # InceptionResNetV2's stem needs at least 75 x 75
    images = torch.randn(4, 3, side, side)
    before = [p.detach().clone() for p in model.parameters()]
    outputs = model(images)
    # Classifiers give one score per class and image; segmenters one per class and pixel.
    labels = torch.randint(0, 3, (4, side, side)) if outputs.ndim == 4 else torch.tensor([0, 1, 2, 0])
    loss = torch.nn.functional.cross_entropy(outputs, labels)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("name", sorted(n for n in AUGMENTATIONS if n != "none"))
def test_every_augmentation_keeps_shape_and_dtype(name):
    import numpy as np
    image = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    out = build_augmentation(name)(image=image)["image"]
    assert out.shape == image.shape and out.dtype == np.uint8


def test_unavailable_pretrained_weights_say_how_to_opt_out(monkeypatch):
    def offline(*args, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("hub unreachable")
        return torch.nn.Identity()

    monkeypatch.setattr("trainables.models.classifiers.timm.create_model", offline)
    with pytest.raises(PretrainedWeightsError, match=r"--set pretrained=false.*cpu profile"):
        timm_model("efficientnet_b0", num_classes=3, pretrained=True, pretrained_path=None)


def test_missing_local_weights_file_is_named(tmp_path):
    with pytest.raises(PretrainedWeightsError, match="nothere.pth does not exist"):
        build_model("efficientnet_b0", num_classes=3, pretrained=True,
                    pretrained_path=str(tmp_path / "nothere.pth"))


def test_local_weights_file_is_loaded(tmp_path):
    import timm
    source = timm.create_model("efficientnet_b0", pretrained=False, num_classes=1000)
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    model = build_model("efficientnet_b0", num_classes=3, pretrained=True, pretrained_path=str(path))
    assert torch.equal(model.conv_stem.weight, source.conv_stem.weight)
    assert model.get_classifier().out_features == 3


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_every_sweeps_report_names_known_sections_of_its_kind_of_study(name):
    from analysis.sections import validate_spec
    validate_spec(SWEEPS[name])


def test_an_unknown_report_section_is_an_error_listing_the_valid_ones():
    from analysis.sections import validate_spec
    from sweeps.report_spec import ReportSpec
    sweep = replace(get_sweep("bccd_imbalance"), report=ReportSpec(sections=("summary", "tabels")))
    with pytest.raises(KeyError, match="unknown report section 'tabels'; near matches: trials; "
                                       "valid report sections: .*ablation"):
        validate_spec(sweep)


@pytest.mark.parametrize("name", ["all_unet", "lymphoblast_maskrcnn"])
def test_the_model_comparison_is_an_error_in_a_study_that_does_not_classify(name):
    from analysis.sections import validate_spec
    from sweeps.report_spec import ReportSpecError
    spec = get_sweep(name)
    sweep = replace(spec, report=replace(spec.report, sections=(*spec.report.sections, "model_comparison")))
    with pytest.raises(ReportSpecError, match=f"sweep '{name}': report section 'model_comparison' is for "
                                              f"classification studies only"):
        validate_spec(sweep)
