"""The shared training loop: early stopping, divergence, checkpoint-on-improvement."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from trainables import engine
from trainables.arrays import Normalize
from trainables.checkpoints import META_FILE, STATE_FILE, _plain, load_checkpoint_model
from trainables.config import ConfigError, LoopConfig
from trainables.engine import (
    FP32_CPU,
    STOP_COMPLETED,
    STOP_DIVERGED,
    STOP_EARLY,
    Acceleration,
    Diverged,
    EarlyStopping,
    LoopSettings,
    acceleration_for,
    check_epoch_loss,
    fit,
    prepare_model,
    train_one_epoch,
)


def test_early_stopping_counts_epochs_without_improvement():
    early = EarlyStopping(patience=2, mode="max")
    assert early.update(0.5) and not early.should_stop
    assert not early.update(0.5)
    assert not early.update(0.4) and early.should_stop
    assert early.best == 0.5


def test_nan_never_counts_as_improvement():
    early = EarlyStopping(patience=3, mode="min")
    assert not early.update(math.nan)
    assert early.best == math.inf


@pytest.mark.parametrize("loss", [math.nan, math.inf, 1e4])
def test_non_finite_or_exploded_epoch_loss_is_divergence(loss):
    with pytest.raises(Diverged):
        check_epoch_loss(loss, bound=10.0)


def test_loss_within_bound_is_not_divergence():
    check_epoch_loss(9.9, bound=10.0)


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _run_fit(lr: float, *, max_epochs=4, patience=10, evaluate=None, epoch_extras=None, optimizer=torch.optim.SGD,
             channels_last=False):
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    x = torch.randn(32, 2)
    y = (x[:, 0] > 0).long()
    reports = []

    def report(metrics, checkpoint=None):
        kept = checkpoint.to_directory(f"kept-{len(reports)}") if checkpoint else None
        reports.append((metrics, kept))

    def batch_loss(net, batch):
        logits = net(batch[0])
        return nn.functional.cross_entropy(logits, batch[1]), (logits.argmax(1) == batch[1]).sum()

    def default_evaluate(net):
        with torch.no_grad():
            logits = net(x)
        return {"loss": nn.functional.cross_entropy(logits, y).item(),
                "accuracy": (logits.argmax(1) == y).float().mean().item()}

    settings = LoopSettings(max_epochs=max_epochs, plateau_factor=0.5, plateau_patience=5,
                            early_stopping_patience=patience, divergence_loss=10 * math.log(2),
                            monitor="val_accuracy", mode="max", channels_last=channels_last)
    fit(model=model, optimizer=optimizer(model.parameters(), lr=lr), train_batches=lambda: [(x, y)],
        batch_loss=batch_loss, evaluate=evaluate or default_evaluate, settings=settings,
        meta={"task": "test"}, report=report, epoch_extras=epoch_extras)
    return model, reports


def test_fit_reports_every_epoch_and_marks_completion():
    _, reports = _run_fit(lr=0.5, max_epochs=4)
    assert [m["epoch"] for m, _ in reports] == [1, 2, 3, 4]
    assert [m["stop_reason"] for m, _ in reports] == ["", "", "", STOP_COMPLETED]
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "epoch_seconds"} <= set(reports[0][0])


def test_fit_checkpoints_every_epoch_marking_improvements_and_the_checkpoint_loads(tmp_path):
    scores = iter([0.5, 0.7, 0.6, 0.9])
    model, reports = _run_fit(lr=0.1, evaluate=lambda net: {"loss": 1.0, "accuracy": next(scores)})
    metas = [json.loads((Path(c) / META_FILE).read_text()) for _, c in reports]
    assert [m["epoch"] for m in metas] == [1, 2, 3, 4]
    assert [m["best_so_far"] for m in metas] == [True, True, False, True]
    assert [m["value"] for m in metas] == [0.5, 0.7, 0.6, 0.9]
    restored, meta = load_checkpoint_model(reports[-1][1], nn.Linear(2, 2))
    assert meta["epoch"] == 4 and meta["task"] == "test" and meta["monitor"] == "val_accuracy"
    assert torch.equal(restored.weight, model.weight)


def test_fit_stops_early_after_patience_epochs_without_improvement():
    _, reports = _run_fit(lr=0.1, max_epochs=20, patience=2,
                          evaluate=lambda net: {"loss": 1.0, "accuracy": 0.5})
    assert len(reports) == 3 and reports[-1][0]["stop_reason"] == STOP_EARLY


def test_fit_ends_a_diverging_trial_at_once_with_the_reason_and_its_node():
    _, reports = _run_fit(lr=1e6, max_epochs=20)
    last = reports[-1][0]
    assert last["stop_reason"] == STOP_DIVERGED
    assert set(last) >= {"node_id", "epoch_seconds", "lr"} and isinstance(last["node_id"], str)
    assert "divergence bound" in last["divergence_reason"] or "non-finite" in last["divergence_reason"]
    assert len(reports) <= 2 and math.isnan(last["val_accuracy"])


def test_fit_leaves_no_staging_directories_behind(tmp_path):
    _run_fit(lr=0.5, max_epochs=3)
    assert list(tmp_path.glob(".checkpoint-staging-*")) == []


def test_fit_ends_a_trial_whose_validation_loss_explodes_as_diverged():
    losses = iter([0.5, 50.0])
    _, reports = _run_fit(lr=0.1, max_epochs=5, evaluate=lambda net: {"loss": next(losses), "accuracy": 0.5})
    assert [m["epoch"] for m, _ in reports] == [1, 2]
    assert reports[-1][0]["stop_reason"] == STOP_DIVERGED
    assert "validation loss 50 exceeds the divergence bound" in reports[-1][0]["divergence_reason"]


def test_train_one_epoch_reports_the_share_of_samples_right_during_training():
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    batches = [(torch.randn(5, 2), torch.randint(0, 2, (5,))), (torch.randn(3, 2), torch.randint(0, 2, (3,)))]
    with torch.no_grad():
        expected = sum((model(x).argmax(1) == y).sum().item() for x, y in batches) / 8

    def batch_loss(net, batch):
        logits = net(batch[0])
        return nn.functional.cross_entropy(logits, batch[1]), (logits.argmax(1) == batch[1]).sum()

    loss, accuracy = train_one_epoch(model, batches, batch_loss, torch.optim.SGD(model.parameters(), lr=0.0))
    assert accuracy == pytest.approx(expected) and loss > 0
    _, none = train_one_epoch(model, batches, lambda net, b: (batch_loss(net, b)[0], None),
                              torch.optim.SGD(model.parameters(), lr=0.0))
    assert none is None


def test_epoch_extras_add_the_trainables_own_measurements_to_each_epoch():
    calls = iter(range(1, 10))
    _, reports = _run_fit(lr=0.1, max_epochs=3, epoch_extras=lambda: {"train_loss_box": float(next(calls))})
    assert [m["train_loss_box"] for m, _ in reports] == [1.0, 2.0, 3.0]


def test_a_restored_trial_resumes_from_its_checkpoint_loaded_weights_only(monkeypatch):
    """Tune hands a restored trial its latest checkpoint: the loop picks up at the next epoch
    with the saved weights, optimiser moments, plateau schedule and early-stopping count, all
    read back with ``weights_only=True``."""
    from ray import tune

    from trainables import checkpoints
    scores = iter([0.5, 0.7, 0.6])
    model, first = _run_fit(lr=0.1, max_epochs=3, optimizer=torch.optim.AdamW,
                            evaluate=lambda net: {"loss": 1.0, "accuracy": next(scores)})
    saved = torch.load(Path(first[-1][1]) / STATE_FILE, weights_only=True)
    assert saved["early_stopping"] == {"best": 0.7, "epochs_without_improvement": 1}
    monkeypatch.setattr(tune, "get_checkpoint", lambda: tune.Checkpoint.from_directory(first[-1][1]))
    restored = {}

    def spy(checkpoint, net, optimizer, scheduler, early):
        epoch = real_restore(checkpoint, net, optimizer, scheduler, early)
        restored.update(weight=net.weight.detach().clone(), optimizer=copy.deepcopy(optimizer.state_dict()),
                        scheduler=copy.deepcopy(scheduler.state_dict()))
        return epoch

    real_restore = checkpoints.restore
    monkeypatch.setattr(checkpoints, "restore", spy)
    _, resumed = _run_fit(lr=0.1, max_epochs=5, patience=3, optimizer=torch.optim.AdamW,
                          evaluate=lambda net: {"loss": 1.0, "accuracy": 0.6})
    assert torch.equal(restored["weight"], model.weight)
    for index, entries in saved["optimizer"]["state"].items():
        for key, value in entries.items():
            assert torch.equal(torch.as_tensor(restored["optimizer"]["state"][index][key]), torch.as_tensor(value))
    assert restored["scheduler"] == saved["scheduler"]
    assert [m["epoch"] for m, _ in resumed] == [4, 5]
    assert resumed[0][0]["best_val_accuracy"] == 0.7
    assert resumed[-1][0]["stop_reason"] == STOP_EARLY  # epochs 3, 4 and 5 without improvement


def test_checkpoint_state_is_saved_as_plain_data_or_not_at_all():
    from collections import namedtuple

    import numpy as np
    pair = namedtuple("Pair", "a b")
    plain = _plain({"best": np.float64(0.5), "count": np.int64(3), "betas": pair(0.9, 0.99),
                    "lrs": [np.float32(0.25)], "t": torch.ones(1), "none": None, "mode": "min"})
    assert plain == {"best": 0.5, "count": 3, "betas": (0.9, 0.99), "lrs": [0.25], "t": plain["t"],
                     "none": None, "mode": "min"}
    assert type(plain["best"]) is float and type(plain["count"]) is int and type(plain["betas"]) is tuple
    with pytest.raises(TypeError, match="weights_only"):
        _plain({"when": object()})


def _linear_batches(sizes, *, nan_at=None):
    """Batches of a 2-feature, 2-class problem; the batch at ``nan_at`` has NaN inputs."""
    generator = torch.Generator().manual_seed(1)
    batches = []
    for index, size in enumerate(sizes):
        x = torch.randn(size, 2, generator=generator)
        batches.append((x * math.nan if index == nan_at else x, (x[:, 0] > 0).long()))
    return batches


def _cross_entropy(net, batch):
    logits = net(batch[0])
    return nn.functional.cross_entropy(logits, batch[1]), (logits.argmax(1) == batch[1]).sum()


DEFERRED_CPU = Acceleration(device_type="cpu", autocast_dtype=None, grad_scaling=False, channels_last=False,
                            check_each_step=False)


@pytest.mark.parametrize("acceleration", [FP32_CPU, DEFERRED_CPU], ids=["per-batch", "per-epoch"])
def test_epoch_loss_is_the_sample_weighted_mean_of_the_batch_losses_exactly(acceleration):
    """Summed on the device or batch by batch, the epoch's loss is the float sum of
    ``loss.item() * size`` over the batch sizes, bit for bit as before."""
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    batches = _linear_batches([5, 3, 7])
    with torch.no_grad():
        expected_total = 0.0
        for batch in batches:
            expected_total += _cross_entropy(model, batch)[0].item() * len(batch[0])
    loss, _ = train_one_epoch(model, batches, _cross_entropy, torch.optim.SGD(model.parameters(), lr=0.0),
                              acceleration)
    assert loss == expected_total / 15


def test_a_nan_batch_with_the_per_epoch_check_trains_on_and_the_epoch_loss_is_nan():
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    seen = []

    def counting(net, batch):
        seen.append(len(batch[0]))
        return _cross_entropy(net, batch)

    loss, _ = train_one_epoch(model, _linear_batches([4, 4, 4], nan_at=1), counting,
                              torch.optim.SGD(model.parameters(), lr=0.1), DEFERRED_CPU)
    assert seen == [4, 4, 4] and math.isnan(loss)


@pytest.mark.parametrize("acceleration", [FP32_CPU, DEFERRED_CPU], ids=["per-batch", "per-epoch"])
def test_a_nan_batch_in_the_middle_of_an_epoch_ends_the_trial_as_diverged(monkeypatch, acceleration):
    monkeypatch.setattr(engine, "acceleration_for", lambda device, channels_last: acceleration)
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    epochs = iter([_linear_batches([4, 4, 4]), _linear_batches([4, 4, 4], nan_at=1)])
    reports = []
    settings = LoopSettings(max_epochs=5, plateau_factor=0.5, plateau_patience=5, early_stopping_patience=10,
                            divergence_loss=10 * math.log(2), monitor="val_accuracy", mode="max")
    fit(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), train_batches=lambda: next(epochs),
        batch_loss=_cross_entropy, evaluate=lambda net: {"loss": 0.5, "accuracy": 0.5}, settings=settings,
        meta={"task": "test"}, report=lambda metrics, checkpoint=None: reports.append(metrics))
    assert [m["epoch"] for m in reports] == [1, 2]
    assert reports[-1]["stop_reason"] == STOP_DIVERGED
    assert reports[-1]["divergence_reason"] == "non-finite training loss (nan)"


def test_grad_scaling_skips_a_step_whose_loss_is_infinite_and_the_epoch_loss_shows_it():
    """fp16's GradScaler leaves the weights untouched by an inf step (here on the CPU, which
    torch.amp.GradScaler also serves); the epoch's sum still ends the trial."""
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    before = copy.deepcopy(model.state_dict())
    scaling = Acceleration(device_type="cpu", autocast_dtype=None, grad_scaling=True, channels_last=False,
                           check_each_step=False)
    batches = _linear_batches([4])
    loss, _ = train_one_epoch(model, batches, lambda net, b: (_cross_entropy(net, b)[0] * math.inf, None),
                              torch.optim.SGD(model.parameters(), lr=0.1), scaling, torch.amp.GradScaler("cpu"))
    assert math.isinf(loss)
    assert all(torch.equal(model.state_dict()[key], value) for key, value in before.items())


def test_autocast_runs_the_forward_pass_in_the_accelerations_dtype():
    dtypes = []
    model = nn.Linear(2, 2)

    def recording(net, batch):
        logits = net(batch[0])
        dtypes.append(logits.dtype)
        return nn.functional.cross_entropy(logits.float(), batch[1]), None

    bf16 = Acceleration(device_type="cpu", autocast_dtype=torch.bfloat16, grad_scaling=False,
                        channels_last=False, check_each_step=False)
    train_one_epoch(model, _linear_batches([4]), recording, torch.optim.SGD(model.parameters(), lr=0.1), bf16)
    train_one_epoch(model, _linear_batches([4]), recording, torch.optim.SGD(model.parameters(), lr=0.1))
    assert dtypes == [torch.bfloat16, torch.float32]


def test_the_cpu_keeps_fp32_with_per_batch_checks_whatever_the_trainable_allows():
    assert acceleration_for(torch.device("cpu"), channels_last=True) == FP32_CPU
    assert FP32_CPU.autocast_dtype is None and not FP32_CPU.channels_last and FP32_CPU.check_each_step


@pytest.mark.parametrize("bf16, dtype, scaling", [(True, torch.bfloat16, False), (False, torch.float16, True)])
def test_cuda_autocasts_in_bf16_where_supported_else_fp16_with_a_grad_scaler(monkeypatch, bf16, dtype, scaling):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)
    chosen = acceleration_for(torch.device("cuda", 0), channels_last=True)
    assert chosen == Acceleration(device_type="cuda", autocast_dtype=dtype, grad_scaling=scaling,
                                  channels_last=True, check_each_step=False)
    assert not acceleration_for(torch.device("cuda"), channels_last=False).channels_last


def test_fit_uses_the_model_device_and_the_trainables_channels_last_setting(monkeypatch):
    asked = []

    def spy(device, *, channels_last):
        asked.append((device.type, channels_last))
        return FP32_CPU

    monkeypatch.setattr(engine, "acceleration_for", spy)
    _run_fit(lr=0.1, max_epochs=1, channels_last=True)
    _run_fit(lr=0.1, max_epochs=1)
    assert asked == [("cpu", True), ("cpu", False)]


def test_channels_last_converts_the_model_in_place_and_turns_on_cudnn_benchmark(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    model = nn.Sequential(Normalize([0.5] * 3, [0.25] * 3), nn.Conv2d(3, 4, 3))
    weight = model[1].weight
    prepare_model(model, Acceleration(device_type="cuda", autocast_dtype=torch.bfloat16, grad_scaling=False,
                                      channels_last=True, check_each_step=False))
    assert model[1].weight is weight and weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.backends.cudnn.benchmark


def test_the_cpu_leaves_the_models_layout_and_cudnn_alone(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    model = nn.Conv2d(3, 4, 3)
    prepare_model(model, FP32_CPU)
    assert model.weight.is_contiguous() and not torch.backends.cudnn.benchmark


def test_normalize_hands_the_first_convolution_channels_last_memory_already():
    """The uint8 NHWC batch permuted to NCHW is NHWC in memory, so only the model's weights need
    converting; the inputs need no ``channels_last`` copy."""
    images = torch.randint(0, 255, (2, 5, 6, 3), dtype=torch.uint8)
    out = Normalize([0.5] * 3, [0.25] * 3)(images)
    assert out.shape == (2, 3, 5, 6) and out.is_contiguous(memory_format=torch.channels_last)


def test_loop_settings_carry_the_trainables_channels_last_choice():
    config = LoopConfig(lr=1e-3, batch_size=2, eval_batch_size=2, max_epochs=3, plateau_patience=1,
                        early_stopping_patience=2)
    monitor = engine.Monitor("val_accuracy", "max")
    assert LoopSettings.of(config, baseline_loss=math.log(2), monitor=monitor, channels_last=True).channels_last
    assert not LoopSettings.of(config, baseline_loss=math.log(2), monitor=monitor).channels_last


def test_loop_settings_diverge_at_the_factor_times_the_baseline_loss():
    config = LoopConfig(lr=1e-3, batch_size=2, eval_batch_size=2, max_epochs=3, divergence_factor=4.0)
    settings = LoopSettings.of(config, baseline_loss=2.5, monitor=engine.Monitor("val_loss", "min"))
    assert settings.divergence_loss == 10.0


@pytest.mark.parametrize("key", ["lr", "batch_size", "eval_batch_size", "max_epochs", "divergence_factor"])
def test_the_loop_config_refuses_a_non_positive_loop_setting(key):
    values = {"lr": 1e-3, "batch_size": 2, "eval_batch_size": 2, "max_epochs": 3, key: 0}
    with pytest.raises(ConfigError, match=f"config key '{key}' must be positive"):
        LoopConfig(**values)


def test_asking_for_the_trials_cpus_outside_ray_starts_no_ray_instance():
    # Run apart from this test session, which may hold its own Ray instance.
    code = ("import ray; from trainables import engine; cpus = engine.assigned_cpus(); "
            "print(cpus, ray.is_initialized())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == [str(os.cpu_count() or 1), "False"]
