"""On a real CUDA GPU: a classification trial trains under mixed precision through the engine,
the device data path draws the loader's samples in the loader's order with its tensors on the
GPU, packing calibration measures a real peak, and the throughput benchmark runs.

Every test here is marked ``gpu``: skipped without CUDA (``tests/conftest.py``), and
``pytest -m gpu`` runs exactly these on a GPU machine (sized for under two minutes on an H100;
written without a GPU at hand, so not yet run on one)."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch
from torch.utils.data import DataLoader, RandomSampler

from sweeps.data import prepare_sweep_data
from sweeps.packing import calibrate_peak_memory
from sweeps.registry import get_sweep
from sweeps.space import resolve
from tests.conftest import REPO
from tests.test_device_data import TINY_CONFIGS, classification_split, epoch, tiny_data
from trainables import engine
from trainables.arrays import ArrayDataset
from trainables.classification import ClassificationConfig, classification_trainable, training_indices
from trainables.config import from_config
from trainables.device_data import DeviceBatches, training_batches
from trainables.engine import Monitor

pytestmark = pytest.mark.gpu

CUDA = torch.device("cuda")


def test_a_classification_trial_trains_on_cuda_under_autocast_with_finite_losses(ray_session, monkeypatch,
                                                                                   tmp_path):
    """bf16 autocast where the GPU supports it (no scaler), else fp16 with a ``GradScaler``;
    the training forward passes run in that dtype, validation in fp32; channels_last weights.
    (``ray_session``: the trainable asks Ray's runtime context for its CPUs, which outside Ray
    starts an instance of its own, and the session's could then not start.)"""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)  # restored after
    bf16 = torch.cuda.is_bf16_supported()
    amp_dtype = torch.bfloat16 if bf16 else torch.float16
    acceleration = engine.acceleration_for(CUDA, channels_last=True)
    assert (acceleration.autocast_dtype, acceleration.grad_scaling) == (amp_dtype, not bf16)
    assert acceleration.channels_last and not acceleration.check_each_step
    forwards, scalers, reports, trained = [], [], [], {}
    real_fit, real_step = engine.fit, engine.backward_and_step

    def recording_step(loss, optimizer, scaler):
        scalers.append(scaler)
        real_step(loss, optimizer, scaler)

    def recording_fit(**kwargs):
        model = kwargs["model"]
        model.register_forward_hook(lambda module, inputs, output: forwards.append(
            (module.training, output.dtype, output.device.type, torch.is_autocast_enabled("cuda"))))
        real_fit(**kwargs, report=lambda metrics, checkpoint=None: reports.append(metrics))
        trained.update(model=model, data_path=kwargs["meta"]["data_path"])

    monkeypatch.setattr(engine, "backward_and_step", recording_step)
    monkeypatch.setattr(engine, "fit", recording_fit)
    config = {**TINY_CONFIGS["classification"], "seed": 5}           # 2 epochs of 3 steps, custom_cnn
    classification_trainable(config, data=tiny_data("classification"), monitor=Monitor("val_macro_f1", "max"))

    assert [report["epoch"] for report in reports] == [1, 2] and trained["data_path"] == "device"
    assert all(math.isfinite(report["train_loss"]) and math.isfinite(report["val_loss"]) for report in reports)
    training = [forward for forward in forwards if forward[0]]
    evaluation = [forward for forward in forwards if not forward[0]]
    assert len(training) == 6 and set(training) == {(True, amp_dtype, "cuda", True)}
    assert evaluation and set(evaluation) == {(False, torch.float32, "cuda", False)}
    assert len(scalers) == 6
    if bf16:
        assert all(scaler is None for scaler in scalers)
    else:
        assert all(isinstance(scaler, torch.amp.GradScaler) for scaler in scalers)
    convolutions = [p for p in trained["model"].parameters() if p.dim() == 4]
    assert convolutions and all(p.is_cuda and p.is_contiguous(memory_format=torch.channels_last)
                                for p in convolutions)


@pytest.mark.parametrize("setting", [{}, {"oversampling": True}, {"balance_per_class": 10},
                                     {"epoch_samples": 50}, {"epoch_samples": 130, "oversampling": True}])
def test_the_device_path_on_cuda_draws_the_loaders_samples_in_the_loaders_order(setting):
    """``tests/test_device_data.py``'s CPU test, on the GPU: the batches live on CUDA and hold
    the samples the CPU loader draws, in its order, epoch after epoch."""
    split = classification_split()
    config = from_config(ClassificationConfig, {"seed": 11, **setting})
    indices = training_indices(config, split.labels)
    device = DeviceBatches(split, indices, batch_size=16, epoch_samples=config.epoch_samples, seed=11,
                           device=CUDA, augment="none")
    dataset = ArrayDataset(split, indices)
    loader = DataLoader(dataset, batch_size=16, sampler=RandomSampler(
        dataset, num_samples=config.epoch_samples, generator=torch.Generator().manual_seed(11)))
    for _ in range(3):
        batches = list(device())
        assert all(images.is_cuda and labels.is_cuda for images, labels in batches)
        images = torch.cat([images.cpu() for images, _ in batches])
        labels = torch.cat([labels.cpu() for _, labels in batches])
        loader_images, loader_labels = zip(*loader)
        assert torch.equal(images, torch.cat(loader_images)) and torch.equal(labels, torch.cat(loader_labels))
    full_pass = len(indices) if indices is not None else len(split.labels)
    assert len(labels) == (config.epoch_samples if config.epoch_samples is not None else full_pass)


def test_augmented_batches_on_cuda_repeat_for_a_seed_and_auto_picks_the_device_path():
    split = classification_split()

    def batches(seed: int) -> DeviceBatches:
        return DeviceBatches(split, None, batch_size=16, epoch_samples=None, seed=seed, device=CUDA,
                             augment="bccd_light")

    (a, la), (b, lb), (c, _) = epoch(batches(3)), epoch(batches(3)), epoch(batches(4))
    assert a.is_cuda and a.dtype == torch.float32 and la.is_cuda
    assert torch.equal(a, b) and torch.equal(la, lb) and not torch.equal(a, c)
    assert 0 <= float(a.min()) and float(a.max()) <= 255 + 1e-3
    chosen = training_batches(split, None, augment="bccd_light", batch_size=16, epoch_samples=None, seed=0,
                              device=CUDA, data_path="auto")
    assert chosen.path == "device" and "fits 25% of the GPU's total memory" in chosen.choice.reason


@pytest.mark.timeout(300)
def test_packing_calibration_measures_a_peak_below_the_gpus_memory(ray_session, shared_data_dir):
    import ray

    assert ray.cluster_resources().get("GPU", 0) >= 1, "Ray sees no GPU: the calibration task could never start"
    torch.cuda.empty_cache()              # what this process caches would count beside the task's peak
    resolved = resolve(get_sweep("bccd_imbalance"), profile="full", smoke=True, overrides=())
    data = prepare_sweep_data(resolved, data_dir=str(shared_data_dir))
    measurement = calibrate_peak_memory(resolved, data)
    total = torch.cuda.get_device_properties(0).total_memory
    assert measurement.gpu_bytes == pytest.approx(total, rel=0.05)
    # at least a CUDA context and a trained EfficientNet-B0's tensors; less than the whole GPU
    assert 64 * 2**20 < measurement.peak_bytes < measurement.gpu_bytes


@pytest.mark.timeout(300)
def test_the_gpu_throughput_benchmark_runs_on_cuda():
    command = [sys.executable, str(REPO / "benchmarks" / "gpu_throughput.py"), "--device", "cuda", "--quick",
               "--batch-sizes", "32", "--steps", "8", "--epochs", "2"]
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(command, cwd=REPO, env={**os.environ, "PYTHONPATH": path}, capture_output=True,
                            text=True, timeout=280)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "classification_trainable, augment=bccd_light" in result.stdout
    assert "data path: per-sample" in result.stdout
