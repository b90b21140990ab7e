"""Search-space resolution, profiles, ``--set`` overrides and the source comments."""

from __future__ import annotations

import re

import pytest

from search_spaces import search_space_path
from sweeps.registry import SWEEPS, get_sweep
from sweeps.space import DataSettings, SearchSpaceError, from_saved, parse_override, resolve
from trainables.config import ConfigError

SPEC = get_sweep("bccd_imbalance")


def test_full_profile_holds_the_documents_grid():
    resolved = resolve(SPEC, profile="full")
    assert resolved.grid == {"weighted_loss": [False, True], "oversampling": [False, True],
                             "lr": [1e-4, 3e-4, 1e-3]}
    assert resolved.grid_size == 12
    assert resolved.data.image_size == 224 and resolved.fixed["pretrained"] is True
    assert resolved.fixed["max_epochs"] == 50 and resolved.fixed["batch_size"] == 32


def test_cpu_and_smoke_profiles_keep_the_grid_and_shrink_the_work():
    cpu = resolve(SPEC, profile="cpu")
    smoke = resolve(SPEC, profile="full", smoke=True)
    assert cpu.grid_size == smoke.grid_size == 12
    assert cpu.fixed["pretrained"] is False and cpu.data.image_size < 224
    assert smoke.fixed["max_epochs"] == 2 and smoke.data.images_per_split
    assert smoke.resources.gpus == 0 and smoke.asha.grace_period == 1


def test_list_override_replaces_an_axis_and_scalar_fixes_it():
    resolved = resolve(SPEC, profile="cpu", overrides=("lr=[5.0]", "weighted_loss=true"))
    assert resolved.grid["lr"] == [5.0]
    assert "weighted_loss" not in resolved.grid and resolved.fixed["weighted_loss"] is True
    assert resolved.grid_size == 2


def test_override_parses_exponent_numbers_as_floats():
    assert parse_override("lr=[1e-3,3e-4]") == ("lr", [1e-3, 3e-4])
    assert parse_override("lr=1e-3") == ("lr", 1e-3)


def test_unknown_override_key_lists_the_valid_keys():
    with pytest.raises(SearchSpaceError, match=r"--set learning_rate: unknown key; valid keys: .*\blr\b"):
        resolve(SPEC, profile="cpu", overrides=("learning_rate=0.1",))


def test_bad_override_value_fails_before_ray():
    with pytest.raises(SearchSpaceError, match="'weighted_loss' must be bool"):
        resolve(SPEC, profile="cpu", overrides=("weighted_loss=[maybe]",))
    with pytest.raises(SearchSpaceError, match="expected key=value"):
        resolve(SPEC, profile="cpu", overrides=("lr",))


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_every_search_space_value_carries_a_source_comment(name):
    lines = search_space_path(SWEEPS[name].search_space).read_text().splitlines()
    in_section = False
    uncommented = []
    for line in lines:
        if re.match(r"^(data|fixed|grid):", line):
            in_section = True
        elif re.match(r"^\S", line):
            in_section = False
        elif in_section and re.match(r"^\s+\w+:\s*\S", line) and "#" not in line:
            uncommented.append(line)
    assert uncommented == []


def test_all_unet_holds_study_6s_grid():
    resolved = resolve(get_sweep("all_unet"), profile="full")
    assert resolved.grid == {"lr": [0.0001, 0.001, 0.01, 0.1], "model": ["unet", "unet_fpn", "unet_fpn_gelu"],
                             "dropout": [0.4, 0.2, 0.0]}
    assert next(iter(resolved.grid)) == "lr", "lr must be the slowest axis so the lr 0.1 trials run last"
    assert [c["lr"] for c in resolved.configs()][-9:] == [0.1] * 9
    assert resolved.grid_size == 36
    assert (resolved.fixed["batch_size"], resolved.fixed["max_epochs"], resolved.fixed["optimizer"]) == (32, 60, "adam")
    smoke = resolve(get_sweep("all_unet"), profile="cpu", smoke=True)
    assert smoke.grid == resolved.grid


# The sweep each bad data setting is tried on: one whose dataset has the key, unless the point is that it has not.
BCCD, TALEQANI, DETECTION, LYMPHOBLAST = "bccd_imbalance", "all_transfer", "bccd_detection", "lymphoblast_maskrcnn"
FRACTIONS = "'split_fractions' must be 3 positive numbers (train, val, test) summing to 1"
PER_SPLIT = "'images_per_split' must be a whole number of at least 1, or null for every image"
RELATIVE = "'annotations' must be a file name or a relative path inside the data directory"
BAD_DATA_SETTINGS = [
    (BCCD, "image_size=-5", "must be a whole number of pixels, at least 8, got -5"),
    (BCCD, "image_size=7", "must be a whole number of pixels, at least 8, got 7"),
    (BCCD, "image_size=abc", "data setting 'image_size' must be int, got 'abc'"),
    (BCCD, "image_size=32.0", "data setting 'image_size' must be int, got 32.0"),
    (BCCD, "image_size=true", "data setting 'image_size' must be int, got True"),
    (BCCD, "padding=-100", "data setting 'padding' must be a whole number of pixels, 0 or more, got -100"),
    (BCCD, "images_per_split=0", PER_SPLIT),
    (BCCD, "images_per_split=-1", PER_SPLIT),
    (TALEQANI, "split_fractions=[0.5,0.5,0.5]", FRACTIONS),
    (TALEQANI, "split_fractions=[1,0,0]", FRACTIONS),
    (TALEQANI, "split_fractions=[0.5,0.5]", FRACTIONS),
    (TALEQANI, "split_fractions=[0.5,.nan,0.5]", "data setting 'split_fractions' must be a finite number"),
    (DETECTION, "bilateral=3", "data setting 'bilateral' must be bool, got 3"),
    (BCCD, "bilateral=true", "data setting 'bilateral' does not apply to dataset bccd (only to bccd_detection, "
                             "coco, lymphoblast), got True; remove it"),
    (BCCD, "split_fractions=[0.7,0.15,0.15]", "data setting 'split_fractions' does not apply to dataset bccd (only to "
                                              "coco, image_folder, mask_folder, taleqani)"),
    (BCCD, "annotations=via_project.json", "data setting 'annotations' does not apply to dataset bccd (only to "
                                           "coco, lymphoblast)"),
    (LYMPHOBLAST, "annotations=/data/via.json", RELATIVE),
    (LYMPHOBLAST, "annotations=../via.json", RELATIVE),
    (LYMPHOBLAST, "annotations=''", RELATIVE),
    (BCCD, "dataset=nope", "dataset 'nope' is unknown; valid: bccd, bccd_detection"),
]


@pytest.mark.parametrize("sweep, item, message", BAD_DATA_SETTINGS, ids=[item for _, item, _ in BAD_DATA_SETTINGS])
def test_a_bad_data_setting_names_its_set_item_and_what_is_allowed(sweep, item, message):
    with pytest.raises(SearchSpaceError) as caught:
        resolve(get_sweep(sweep), profile="cpu", overrides=(item,))
    assert str(caught.value).startswith(f"--set {item}: ") and message in str(caught.value)


def test_good_data_settings_are_accepted_at_their_limits():
    resolved = resolve(SPEC, profile="cpu", overrides=("image_size=8", "padding=0", "images_per_split=1"))
    assert (resolved.data.image_size, resolved.data.options.padding, resolved.data.images_per_split) == (8, 0, 1)
    taleqani = resolve(get_sweep("all_transfer"), profile="cpu", overrides=("split_fractions=[0.7,0.15,0.15]",))
    assert taleqani.data.options.split_fractions == [0.7, 0.15, 0.15]
    detection = resolve(get_sweep("bccd_detection"), profile="cpu", overrides=("bilateral=true",))
    assert detection.data.options.bilateral is True


def test_annotations_take_a_file_name_or_a_relative_path_and_default_to_none():
    lymphoblast = get_sweep("lymphoblast_maskrcnn")
    assert resolve(lymphoblast, profile="cpu").data.options.annotations is None
    for name in ("via_project.json", "labels/coco.json"):
        assert resolve(lymphoblast, profile="cpu", overrides=(f"annotations={name}",)).data.options.annotations == name


def test_chestmnist_takes_only_the_image_sizes_it_is_published_at():
    chest = get_sweep("chestmnist_binary")
    assert resolve(chest, profile="cpu", overrides=("image_size=64",)).data.image_size == 64
    with pytest.raises(SearchSpaceError,
                       match=r"--set image_size=32: .*must be one of 28, 64, 128, 224 for chestmnist"):
        resolve(chest, profile="cpu", overrides=("image_size=32",))


def test_data_settings_validate_themselves_on_construction():
    with pytest.raises(ConfigError, match="'image_size' must be a whole number of pixels, at least 8") as caught:
        DataSettings.from_mapping({"dataset": "bccd", "image_size": -5})
    assert caught.value.key == "image_size"
    with pytest.raises(ConfigError, match="'padding' must be int, got 2.5"):
        DataSettings.from_mapping({"dataset": "bccd", "image_size": 32, "padding": 2.5})
    saved = resolve(SPEC, profile="cpu").to_dict()
    with pytest.raises(ConfigError, match="'images_per_split' must be a whole number of at least 1"):
        from_saved(SPEC, {**saved, "data": {**saved["data"], "images_per_split": -1}})


def test_bad_trial_values_name_their_set_item_and_non_finite_numbers_are_refused():
    for item, message in (("lr=abc", "config key 'lr' must be float, got 'abc'"),
                          ("lr=.inf", "config key 'lr' must be a finite number, got inf"),
                          ("lr=[1e-3,-.inf]", "config key 'lr' must be a finite number, got -inf"),
                          ("dropout=nan", "config key 'dropout' must be a finite number, got nan")):
        with pytest.raises(SearchSpaceError) as caught:
            resolve(SPEC, profile="cpu", overrides=("weighted_loss=true", item))
        assert str(caught.value) == f"--set {item}: {message}"


def test_a_bad_value_in_the_file_names_the_file_even_with_set_items(tmp_path):
    text = search_space_path(SPEC.search_space).read_text()
    for before, after, message in (("optimizer: adamw", "optimizer: adamw\n  lr: abc", "config key 'lr' must be float"),
                                   ("padding: 10 ", "padding: -1 ", "data setting 'padding' must be")):
        path = tmp_path / "space.yaml"
        path.write_text(text.replace(before, after, 1))
        with pytest.raises(SearchSpaceError) as caught:
            resolve(SPEC, profile="cpu", overrides=("weighted_loss=true",), path=path)
        assert str(caught.value).startswith(f"{path}: {message}")


def test_an_empty_grid_axis_in_the_file_is_refused(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(search_space_path(SPEC.search_space).read_text().replace("lr: [1.0e-4, 3.0e-4, 1.0e-3]", "lr: []"))
    with pytest.raises(SearchSpaceError, match=r"grid.lr must be a non-empty list of values, got \[\]"):
        resolve(SPEC, profile="full", path=path)
