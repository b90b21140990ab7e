"""The same trial config and seed give the same per-epoch metrics on the CPU, run after run;
another seed gives others. Augmentation draws from its own seeded generator."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from trainables.augment import build_augmentation

ONE_TRIAL = ("lr=[1e-3]", "weighted_loss=false", "oversampling=false")
COMPARED = ["train_loss", "val_loss", "val_macro_f1"]


def augmented(seed: int, image: np.ndarray) -> list[np.ndarray]:
    pipeline = build_augmentation("bccd_light", seed=seed)
    return [pipeline(image=image)["image"] for _ in range(4)]


def test_a_seeded_pipeline_repeats_its_draws_and_another_seed_does_not():
    image = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    first, again, other = augmented(3, image), augmented(3, image), augmented(4, image)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def one_trial_history(storage, data_dir, name: str, seed: int | None = None) -> pd.DataFrame:
    from sweeps.sweep import SweepOptions, run_sweep
    outcome = run_sweep(SweepOptions(name="bccd_imbalance", smoke=True, storage=str(storage), experiment_name=name,
                                     data_dir=str(data_dir), overrides=ONE_TRIAL, seed=seed))
    (progress,) = outcome.experiment_dir.glob("*/progress.csv")
    return pd.read_csv(progress)[["epoch", *COMPARED]]


@pytest.mark.e2e
def test_the_same_trial_twice_gives_identical_epochs_and_another_seed_other_ones(ray_session, shared_data_dir,
                                                                                 tmp_path):
    first = one_trial_history(tmp_path, shared_data_dir, "first")
    again = one_trial_history(tmp_path, shared_data_dir, "again")
    assert len(first) == 2
    pd.testing.assert_frame_equal(first, again)
    other = one_trial_history(tmp_path, shared_data_dir, "other_seed", seed=7)
    assert not np.allclose(first[COMPARED].to_numpy(), other[COMPARED].to_numpy())


def test_deterministic_restricts_torch_to_deterministic_algorithms_without_autotuning(monkeypatch):
    import torch
    from torch import nn

    from sweeps.registry import get_sweep
    from sweeps.space import resolve
    from trainables.engine import Acceleration, prepare_model

    resolved = resolve(get_sweep("bccd_imbalance"), profile="cpu", smoke=True, overrides=("deterministic=true",))
    assert all(config["deterministic"] is True for config in resolved.configs())
    cuda = Acceleration(device_type="cuda", autocast_dtype=torch.bfloat16, grad_scaling=False, channels_last=False,
                        check_each_step=False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        prepare_model(nn.Linear(2, 2), cuda, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert not torch.backends.cudnn.benchmark and os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        # The next trial in an actor Ray Tune reuses does not ask for it: every flag goes back.
        prepare_model(nn.Linear(2, 2), cuda)
        assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
