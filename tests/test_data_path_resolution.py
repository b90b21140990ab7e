"""Issue 19, point 5: ``data_path=auto`` is decided once per sweep, in the driver, before any
trial starts, and recorded in every trial's config; a trial handed ``auto`` anyway decides it
on the GPU's total memory, never on what is free at that moment."""

from __future__ import annotations

import dataclasses
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from ray import tune

from sweeps import tuner
from sweeps.data import SweepData
from sweeps.registry import get_sweep
from sweeps.space import resolve
from sweeps.tuner import RunSettings, build_tuner, with_resolved_data_path
from trainables import device_data
from trainables.datasets.base import ClassificationData, SplitArrays
from trainables.device_data import choose_data_path, resolve_data_path, split_bytes

GPU = torch.device("cuda")


def split(n: int = 16) -> SplitArrays:
    return SplitArrays(np.zeros((n, 32, 32, 3), np.uint8), np.arange(n) % 2, np.arange(n))


def sweep_data(n: int = 16) -> SweepData:
    data = ClassificationData(name="tiny", class_names=("a", "b"), splits={"train": split(n), "val": split(4)})
    return SweepData(axis=None, variants={None: data}, audits={None: None})


def gpu_sweep(*overrides: str):
    """bccd_imbalance's smoke grid with trials on a GPU (the full profile's resources)."""
    resolved = resolve(get_sweep("bccd_imbalance"), profile="cpu", smoke=True, overrides=overrides)
    return dataclasses.replace(resolved, resources=dataclasses.replace(resolved.resources, gpus=0.5))


def test_auto_becomes_one_concrete_path_from_the_memory_free_when_the_sweep_starts():
    needed = split_bytes(split())
    decide = dict(augments={"bccd_light"}, needed_bytes=needed, trials_use_gpu=True)
    assert resolve_data_path("auto", **decide, free_bytes=8 * needed).path == "device"
    tight = resolve_data_path("auto", **decide, free_bytes=2 * needed)
    assert tight.path == "loader" and "exceeds 25% of the GPU's free memory" in tight.reason
    assert resolve_data_path("auto", **{**decide, "trials_use_gpu": False}, free_bytes=8 * needed).path == "loader"
    assert resolve_data_path("device", **decide, free_bytes=0).path == "device"
    assert resolve_data_path("loader", **decide, free_bytes=8 * needed).path == "loader"
    with pytest.raises(ValueError, match="data_path must be one of auto, device, loader, got 'gpu'"):
        resolve_data_path("gpu", **decide)


def test_auto_is_the_loader_when_any_augmentation_of_the_sweep_has_no_device_version(monkeypatch):
    real = device_data.get_augmentation
    monkeypatch.setattr(device_data, "get_augmentation", lambda name: SimpleNamespace(device=None)
                        if name == "cpu_only" else real(name))
    choice = resolve_data_path("auto", augments={"bccd_light", "cpu_only"}, needed_bytes=1, trials_use_gpu=True,
                               free_bytes=2**30)
    assert choice.path == "loader" and "cpu_only has no device version" in choice.reason


def test_the_driver_reads_free_gpu_memory_with_nvidia_smi_and_takes_the_least(monkeypatch):
    monkeypatch.setattr(device_data.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(device_data.subprocess, "run",
                        lambda *args, **kwargs: SimpleNamespace(stdout="81000\n40000\n"))
    assert device_data.driver_free_gpu_bytes() == 40000 * 2**20

    def fails(*args, **kwargs):
        raise subprocess.CalledProcessError(9, "nvidia-smi")
    monkeypatch.setattr(device_data.subprocess, "run", fails)
    assert device_data.driver_free_gpu_bytes() is None
    monkeypatch.setattr(device_data.shutil, "which", lambda name: None)
    assert device_data.driver_free_gpu_bytes() is None
    unknown = resolve_data_path("auto", augments={"none"}, needed_bytes=1, trials_use_gpu=True)
    assert unknown.path == "loader" and "(unknown)" in unknown.reason


def test_a_trial_handed_auto_decides_on_total_memory_never_on_what_is_free(monkeypatch):
    """Before: a packed trial that started when the others held the GPU took the loader."""
    needed = split_bytes(split())
    monkeypatch.setattr(device_data.torch.cuda, "get_device_properties",
                        lambda device: SimpleNamespace(total_memory=8 * needed))
    paths = set()
    for free in (8 * needed, needed):        # the GPU empty, then held by earlier trials
        monkeypatch.setattr(device_data.torch.cuda, "mem_get_info", lambda device=None, free=free: (free, 8 * needed),
                            raising=False)
        paths.add(choose_data_path("auto", split=split(), device=GPU, augment="bccd_light").path)
    assert paths == {"device"}


def test_the_sweep_fixes_the_decided_path_for_every_trial_and_says_why(monkeypatch):
    monkeypatch.setattr(device_data, "driver_free_gpu_bytes", lambda: 2**34)
    told = []
    resolved = with_resolved_data_path(gpu_sweep(), sweep_data(), echo=told.append)
    assert resolved.fixed["data_path"] == "device"
    assert all(config["data_path"] == "device" for config in resolved.configs())
    assert told == ["Training data: every trial takes the device path (the train split (0.00 GiB) fits 25% of "
                    "the GPU's free memory (16.00 GiB))"]
    assert with_resolved_data_path(resolved, sweep_data()) == resolved     # decided once: a no-op after


def test_a_sweep_on_the_cpu_or_naming_its_path_keeps_what_it_says():
    cpu = resolve(get_sweep("bccd_imbalance"), profile="cpu", smoke=True)
    assert with_resolved_data_path(cpu, sweep_data()).fixed["data_path"] == "loader"
    named = gpu_sweep("data_path=device")
    assert with_resolved_data_path(named, sweep_data()).fixed["data_path"] == "device"
    searched = gpu_sweep("data_path=[auto,loader]")
    assert with_resolved_data_path(searched, sweep_data()) == searched


def test_the_tuner_never_hands_a_trial_auto(monkeypatch):
    """Even where the caller did not decide it first, ``build_tuner`` does, in the driver."""
    monkeypatch.setattr(device_data, "driver_free_gpu_bytes", lambda: 1)
    monkeypatch.setattr(tuner, "wrapped_trainable", lambda resolved, data: (lambda config: None))
    built = {}
    monkeypatch.setattr(tune, "Tuner", lambda trainable, **kwargs: built.update(kwargs))
    location = SimpleNamespace(name="x", storage_path="/nonexistent")
    build_tuner(gpu_sweep(), sweep_data(), location, RunSettings(ray_table=True))
    assert built["param_space"]["data_path"] == "loader"
