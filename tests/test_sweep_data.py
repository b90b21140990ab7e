"""A sweep's data variants: one prepared dataset per value of the dataset's variant axis
(study 5's loading_option), chosen per trial config and kept out of the trainable's config."""

from __future__ import annotations

import numpy as np
import pytest

from sweeps.data import SweepData, on_variant, prepare_sweep_data
from sweeps.registry import get_sweep
from sweeps.space import SearchSpaceError, resolve
from tests.synthetic_data import write_taleqani


@pytest.fixture(scope="module")
def taleqani_dir(tmp_path_factory):
    return write_taleqani(tmp_path_factory.mktemp("taleqani"), per_class=10, size=32)


def test_study_5_prepares_one_split_per_loading_option_of_the_same_images(taleqani_dir):
    resolved = resolve(get_sweep("all_inception_nasnet"), profile="cpu", overrides=("image_size=32",))
    data = prepare_sweep_data(resolved, data_dir=str(taleqani_dir), splits=("train", "val", "test"))
    assert data.axis == "loading_option" and set(data.variants) == {1, 2}
    per_class, global_ = data.variants[1], data.variants[2]
    assert [len(per_class.splits[s]) for s in ("train", "val", "test")] == [24, 8, 8]
    assert np.bincount(per_class.splits["test"].labels).tolist() == [2, 2, 2, 2]
    assert [len(global_.splits[s]) for s in ("train", "val", "test")] == [28, 6, 6]
    def every(d):
        return sorted(np.concatenate([d.splits[s].sources for s in d.splits]).tolist())

    assert every(per_class) == every(global_)
    assert set(per_class.splits["test"].sources) != set(global_.splits["test"].sources)
    assert "loading option 1" in data.audit_text() and "loading option 2" in data.audit_text()
    assert set(data.audit_json()["variants"]) == {"1", "2"}


def test_a_trial_gets_its_variant_and_a_config_without_the_axis(taleqani_dir):
    resolved = resolve(get_sweep("all_inception_nasnet"), profile="cpu", overrides=("image_size=32",))
    data = prepare_sweep_data(resolved, data_dir=str(taleqani_dir))
    seen = []

    def classification_trainable(config, *, data, monitor):
        seen.append((config, data))

    trial = on_variant(classification_trainable)
    trial({"lr": 0.1, "loading_option": 2}, data=data, monitor=None)
    assert seen == [({"lr": 0.1}, data.variants[2])]
    assert trial.__name__ == "classification_trainable"
    with pytest.raises(KeyError, match="loading_option=3 has no prepared data; prepared: 1, 2"):
        data.key_of({"loading_option": 3})


def test_a_fixed_loading_option_and_split_fractions_reach_the_dataset(taleqani_dir):
    resolved = resolve(get_sweep("all_transfer"), profile="cpu", overrides=("image_size=32",))
    data = prepare_sweep_data(resolved, data_dir=str(taleqani_dir), splits=("train", "val", "test"))
    assert set(data.variants) == {1}
    assert [len(data.primary.splits[s]) for s in ("train", "val", "test")] == [6 * 4, 2 * 4, 2 * 4]


def test_datasets_without_variants_hold_one_entry_and_pass_configs_through(shared_data_dir):
    resolved = resolve(get_sweep("bccd_imbalance"), profile="cpu", smoke=True)
    data = prepare_sweep_data(resolved, data_dir=str(shared_data_dir))
    assert isinstance(data, SweepData) and data.axis is None and list(data.variants) == [None]
    assert data.for_config({"lr": 1e-3}) == (data.primary, {"lr": 1e-3})
    assert "variants" not in data.audit_json()


def test_the_variant_axis_is_a_valid_override_only_for_a_dataset_that_has_it():
    resolve(get_sweep("all_inception_nasnet"), profile="cpu", overrides=("loading_option=1",))
    with pytest.raises(SearchSpaceError, match="--set loading_option: unknown key"):
        resolve(get_sweep("bccd_imbalance"), profile="cpu", overrides=("loading_option=1",))


def test_the_bilateral_filter_is_a_data_setting_that_reaches_the_detection_reader(tmp_path):
    from tests.synthetic_data import write_lymphoblast

    root = write_lymphoblast(tmp_path / "lymphoblast", images=6, size=96)
    plain = resolve(get_sweep("lymphoblast_maskrcnn"), profile="cpu", smoke=True, overrides=("preprocessing=raw",))
    smoothed = resolve(get_sweep("lymphoblast_maskrcnn"), profile="cpu", smoke=True,
                       overrides=("preprocessing=raw", "bilateral=true"))
    first = prepare_sweep_data(plain, data_dir=str(root)).primary.splits["train"].images[0]
    second = prepare_sweep_data(smoothed, data_dir=str(root)).primary.splits["train"].images[0]
    assert first.shape == second.shape and not np.array_equal(first, second)
    assert "bilateral" in str(smoothed.to_dict()["data"])
