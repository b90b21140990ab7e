"""Each dataset owns a frozen options class (``DatasetEntry.options``), validated like the trial
configs: a key the dataset does not have is an error listing the ones it has, values are
type-checked and range-checked, and ``prepare`` takes exactly the options' fields."""

from __future__ import annotations

import dataclasses
import inspect
import json

import numpy as np
import pytest

import sweeps.run
import sweeps.sweep
from sweeps.data import prepare_sweep_data
from sweeps.registry import SWEEPS, get_sweep
from sweeps.run import main
from sweeps.space import DataSettings, SearchSpaceError, data_keys, from_saved, resolve
from tests.synthetic_data import write_taleqani
from trainables.config import ConfigError
from trainables.datasets import DATASETS, get_dataset_entry

# Per dataset: a value of the wrong type and one out of range, each with what the error says.
BAD_OPTIONS = {
    "bccd": (("padding", "10", "data setting 'padding' must be int, got '10'"),
             ("padding", -1, "data setting 'padding' must be a whole number of pixels, 0 or more, got -1")),
    "taleqani_segmentation": (("leakage", 3, "data setting 'leakage' must be str or null, got 3"),
                              ("leakage", "sometimes", "leakage 'sometimes' is unknown; valid: warn, group, drop"),
                              ("empty_masks", "skip", "empty_masks 'skip' is unknown; valid: drop, keep")),
    "taleqani": (("split_fractions", "0.6,0.2,0.2", "data setting 'split_fractions' must be a list of float"),
                 ("split_fractions", [0.6, 0.3, 0.3], "'split_fractions' must be 3 positive numbers")),
    "chestmnist": (("leakage", ["drop"], "data setting 'leakage' must be str or null, got ['drop']"),
                   ("leakage", "often", "leakage 'often' is unknown; valid: warn, group, drop, fail")),
    "lymphoblast": (("bilateral", "yes", "data setting 'bilateral' must be bool, got 'yes'"),
                    ("annotations", "../via.json", "'annotations' must be a file name or a relative path")),
    "bccd_detection": (("bilateral", 1, "data setting 'bilateral' must be bool, got 1"),
                       ("preprocessing", "blurred", "preprocessing 'blurred' is unknown; valid: raw, segmented")),
    "image_folder": (("channels", 2, "data setting 'channels' must be 1 (grey), 3 (colour) or null"),
                     ("split_fractions", [0.5, 0.5], "'split_fractions' must be 3 positive numbers")),
    "mask_folder": (("classes", "0: background", "data setting 'classes' must be dict or null, got '0: background'"),
                    ("classes", {1: "cell", 2: "nucleus"},
                     "must map value 0 to the background or name one class 'background'"),
                    ("split_fractions", [0.6, 0.3, 0.3], "'split_fractions' must be 3 positive numbers")),
    "coco": (("split_fractions", [0.6, 0.3, 0.3], "'split_fractions' must be 3 positive numbers"),
             ("train", "../a.json", "'train' must be a JSON file's path relative to the root folder")),
}
BCCD_KEYS = "valid data settings for bccd: dataset, image_size, images_per_split, leakage, padding"


def section(dataset: str, **options) -> dict:
    return {"dataset": dataset, "image_size": 28 if dataset == "chestmnist" else 32, **options}


def test_every_dataset_has_cases_here():
    assert set(BAD_OPTIONS) == set(DATASETS)


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_prepare_takes_exactly_the_options_fields_with_the_same_defaults(dataset):
    entry = get_dataset_entry(dataset)
    parameters = inspect.signature(entry.prepare).parameters
    common = ("data_dir", "image_size", "use_cache")
    keywords = {name: p.default for name, p in parameters.items() if name not in common}
    defaults = dataclasses.asdict(entry.options())
    assert set(keywords) == set(defaults)
    assert {key: list(value) if isinstance(value, tuple) else value for key, value in keywords.items()} == defaults


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_an_unknown_data_key_lists_the_keys_the_dataset_has(dataset):
    with pytest.raises(ConfigError) as caught:
        DataSettings.from_mapping(section(dataset, colour="blue"))
    assert f"unknown data setting 'colour'; valid data settings for {dataset}: " in str(caught.value)
    assert str(caught.value).endswith(", ".join(data_keys(dataset)))
    assert caught.value.key == "colour"


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_wrong_types_and_out_of_range_values_name_the_key(dataset):
    for key, value, message in BAD_OPTIONS[dataset]:
        with pytest.raises(ConfigError) as caught:
            get_dataset_entry(dataset).options(**{key: value})
        assert message in str(caught.value) and caught.value.key == key
        if key in data_keys(dataset):  # the variant axis is set per trial, not in the data section
            with pytest.raises(ConfigError) as caught:
                DataSettings.from_mapping(section(dataset, **{key: value}))
            assert message in str(caught.value) and caught.value.key == key


def test_a_key_of_another_dataset_names_the_datasets_that_have_it_and_the_valid_ones():
    with pytest.raises(SearchSpaceError) as caught:
        resolve(get_sweep("bccd_imbalance"), profile="cpu", overrides=("split_fractions=[0.6,0.2,0.2]",))
    assert str(caught.value) == (f"--set split_fractions=[0.6,0.2,0.2]: data setting 'split_fractions' does not apply "
                                 f"to dataset bccd (only to coco, image_folder, mask_folder, taleqani), "
                                 f"got [0.6, 0.2, 0.2]; remove it; {BCCD_KEYS}")


def test_split_fractions_reach_the_taleqani_reader_for_both_loading_options(tmp_path):
    root = write_taleqani(tmp_path, per_class=10, size=32)
    resolved = resolve(get_sweep("all_inception_nasnet"), profile="cpu",
                       overrides=("image_size=32", "split_fractions=[0.6,0.2,0.2]"))
    assert resolved.data.options.split_fractions == [0.6, 0.2, 0.2]
    assert resolved.to_dict()["data"]["split_fractions"] == [0.6, 0.2, 0.2]
    data = prepare_sweep_data(resolved, data_dir=str(root), splits=("train", "val", "test"))
    for variant in data.variants.values():
        assert [len(variant.splits[s]) for s in ("train", "val", "test")] == [24, 8, 8]
    assert np.bincount(data.variants[1].splits["test"].labels).tolist() == [2, 2, 2, 2]


def test_bilateral_on_bccd_exits_2_with_one_line_before_the_audit(monkeypatch, capsys):
    def audit_ran(resolved, **kwargs):
        raise AssertionError("the data audit ran")

    monkeypatch.setattr(sweeps.sweep, "prepare_sweep_data", audit_ran)
    assert main(["bccd_imbalance", "--smoke", "--set", "bilateral=true"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines == ["error: --set bilateral=true: data setting 'bilateral' does not apply to dataset bccd (only to "
                     f"bccd_detection, coco, lymphoblast), got True; remove it; {BCCD_KEYS}"]


def test_the_variant_axis_is_a_trial_key_checked_before_the_audit_not_a_data_key():
    with pytest.raises(SearchSpaceError, match=r"--set loading_option=3: data setting 'loading_option' must be one "
                                               r"of 1, 2"):
        resolve(get_sweep("all_transfer"), profile="cpu", overrides=("loading_option=3",))
    with pytest.raises(SearchSpaceError, match=r"--set preprocessing=\[raw,blurred\]: preprocessing 'blurred' is "
                                               r"unknown; valid: raw, segmented"):
        resolve(get_sweep("lymphoblast_maskrcnn"), profile="cpu", overrides=("preprocessing=[raw,blurred]",))
    with pytest.raises(ConfigError, match="'loading_option' selects taleqani's data variant per trial; set it under "
                                          "fixed: or grid:"):
        DataSettings.from_mapping(section("taleqani", loading_option=1))


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_experiments_written_with_the_old_flat_data_fields_read_back_the_same(name):
    """``sweep.json`` used to record every dataset's fields for every dataset (padding 10 for
    Taleqani, bilateral false for BCCD …); such an experiment rebuilds the settings it ran with."""
    resolved = resolve(get_sweep(name), profile="cpu", smoke=True)
    options = resolved.data.options
    old = {"dataset": resolved.data.dataset, "image_size": resolved.data.image_size, "padding": 10,
           "images_per_split": resolved.data.images_per_split,
           "split_fractions": getattr(options, "split_fractions", None) if name == "all_transfer" else None,
           "bilateral": False, "annotations": None, "leakage": None}
    saved = json.loads(json.dumps({**resolved.to_dict(), "data": old}))
    assert from_saved(get_sweep(name), saved).data == resolved.data
