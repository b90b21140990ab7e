"""No sweep's trials ever receive the test split: for every registered sweep, the data handed
to its trainable (and to the packing calibration) holds the train and val splits only, even when
the prepared data holds a test split too."""

from __future__ import annotations

import numpy as np
import pytest

from sweeps import packing, tuner
from sweeps.data import SweepData
from sweeps.registry import SWEEPS, get_sweep
from sweeps.space import resolve
from trainables.datasets.base import ClassificationData, SplitArrays


def data_with_a_test_split() -> SweepData:
    split = SplitArrays(np.zeros((2, 8, 8, 3), np.uint8), np.zeros(2, np.int64), np.arange(2))
    data = ClassificationData(name="tiny", class_names=("a", "b"),
                              splits={"train": split, "val": split, "test": split})
    return SweepData(axis=None, variants={None: data}, audits={None: None})


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_the_trainable_of_every_sweep_gets_train_and_val_only(name, monkeypatch):
    handed = {}

    def capture(function, **parameters):
        handed.update(parameters)
        return function

    monkeypatch.setattr(tuner.tune, "with_parameters", capture)
    tuner.wrapped_trainable(resolve(get_sweep(name), profile="cpu", smoke=True), data_with_a_test_split())
    assert [set(variant.splits) for variant in handed["data"].variants.values()] == [{"train", "val"}]


def test_the_packing_calibration_gets_train_and_val_only():
    calibration = packing.small_validation(data_with_a_test_split(), images=1)
    assert set(calibration.primary.splits) == {"train", "val"} and len(calibration.primary.splits["val"]) == 1
