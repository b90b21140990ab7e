"""The training loop shared by every trainable: epochs, LR plateau, early stopping,
best-checkpoint keeping through Tune, resumption and divergence handling.

A task kind supplies two functions — the loss of one training batch, and an evaluation that
returns ``{"loss": ..., <metric>: ...}`` on the validation split — and ``fit`` does the rest.

On a CUDA device the training steps run under mixed precision (``acceleration_for``) and never
wait for the GPU: the epoch's loss is summed on the device and read once, at the end of the
epoch. On the CPU everything stays fp32 and each batch's loss is checked at once, as before.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from ray import tune
from torch import nn

from trainables import checkpoints
from trainables.config import LoopConfig

OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}
# A training step: the batch's loss, and how many of its samples the model got right (None
# where the task has no such count).
BatchLoss = Callable[[nn.Module, Any], tuple[torch.Tensor, torch.Tensor | int | None]]

# The values of ``stop_reason`` a trial's last result can carry; a trial stopped from outside
# (by ASHA) has none, and one whose code raised is errored.
STOP_COMPLETED = "completed"
STOP_EARLY = "early_stopped_patience"
STOP_DIVERGED = "diverged"


class Diverged(RuntimeError):
    """Training loss became non-finite or exploded past the configured bound."""


@dataclass(frozen=True)
class Monitor:
    """The sweep's selection metric, which early stopping and checkpoint keeping also follow."""

    metric: str
    mode: str


@dataclass(frozen=True)
class LoopSettings:
    """What ``fit`` needs besides the model: budgets, schedules and the monitored metric."""

    max_epochs: int
    plateau_factor: float
    plateau_patience: int
    early_stopping_patience: int
    divergence_loss: float
    monitor: str
    mode: str
    # Whether the model may be stored channels_last on a GPU: true for the convolutional
    # classifiers and segmenters, false where the model does not support it (torchvision's
    # R-CNNs); never applied on the CPU.
    channels_last: bool = False
    # The trial config's ``deterministic``: deterministic algorithms only, no cuDNN autotuning.
    deterministic: bool = False

    @classmethod
    def of(cls, config: LoopConfig, *, baseline_loss: float, monitor: Monitor,
           channels_last: bool = False) -> LoopSettings:
        """The loop settings a trainable's config carries; divergence at ``divergence_factor``
        times ``baseline_loss``, an uninformed model's training loss (ln C for a uniform guess
        over C classes)."""
        return cls(max_epochs=config.max_epochs, plateau_factor=config.plateau_factor,
                   plateau_patience=config.plateau_patience,
                   early_stopping_patience=config.early_stopping_patience,
                   divergence_loss=config.divergence_factor * baseline_loss,
                   monitor=monitor.metric, mode=monitor.mode, channels_last=channels_last,
                   deterministic=config.deterministic)


@dataclass(frozen=True)
class Acceleration:
    """How training steps use the trial's device.

    ``autocast_dtype`` is the dtype ``torch.autocast`` runs the forward pass in (None: fp32);
    autocast keeps losses such as cross-entropy and BCE-with-logits, and sums, in fp32.
    ``grad_scaling``: fp16 needs a ``GradScaler``, which also skips any step whose gradients
    hold inf or NaN. ``channels_last`` stores the model's weights NHWC (the ``Normalize`` layer
    already hands the first convolution NHWC memory, see ``trainables.arrays``).
    ``check_each_step`` reads every batch's loss and stops at the first non-finite one, which
    costs nothing on the CPU; otherwise the loss stays on the device and the epoch's sum is
    checked once (``train_one_epoch``).
    """

    device_type: str
    autocast_dtype: torch.dtype | None
    grad_scaling: bool
    channels_last: bool
    check_each_step: bool


FP32_CPU = Acceleration(device_type="cpu", autocast_dtype=None, grad_scaling=False, channels_last=False,
                        check_each_step=True)


def acceleration_for(device: torch.device, *, channels_last: bool) -> Acceleration:
    """Plain fp32 with per-batch checks off CUDA (CPU results stay as they were). On CUDA:
    autocast in bf16 where the GPU supports it (fp32's range, so no scaling), else fp16 with
    a ``GradScaler``; channels_last where the trainable allows it; loss checked per epoch."""
    if device.type != "cuda":
        return FP32_CPU
    bf16 = torch.cuda.is_bf16_supported()
    return Acceleration(device_type="cuda", autocast_dtype=torch.bfloat16 if bf16 else torch.float16,
                        grad_scaling=not bf16, channels_last=channels_last, check_each_step=False)


def prepare_model(model: nn.Module, acceleration: Acceleration, *, deterministic: bool = False) -> None:
    """Put the model in the memory format ``acceleration`` asks for (in place: the optimiser's
    parameters stay the same objects), and let cuDNN pick the fastest kernels for the trial's
    fixed shapes on CUDA. ``deterministic`` (``--set deterministic=true``) instead restricts
    PyTorch to deterministic algorithms and turns autotuning off, so a CUDA trial repeats
    exactly, at some cost in speed; an operation with no deterministic version then raises."""
    if acceleration.channels_last:
        model.to(memory_format=torch.channels_last)
    # Set both ways: an actor Ray Tune reuses for the next trial keeps the last trial's flags.
    if deterministic:
        # cuBLAS needs a fixed workspace to be deterministic (PyTorch's reproducibility notes).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic and acceleration.device_type == "cuda"


def model_device(model: nn.Module) -> torch.device:
    """The device the model's parameters are on (the CPU for a model without any)."""
    parameter = next(model.parameters(), None)
    return torch.device("cpu") if parameter is None else parameter.device


def quiet_checkpoint_logging() -> None:
    """Ray logs every persisted checkpoint at INFO; one line per trial-epoch drowns the
    progress table, and the checkpoints are listed in the experiment directory anyway."""
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@runtime_checkable
class ResumableBatches(Protocol):
    """Training batches (calling them yields one epoch) with random streams of their own (the
    sampling order, the augmentation's draws), which a checkpoint carries so that a resumed
    trial draws the epochs an uninterrupted one would have (``trainables.device_data``)."""

    def __call__(self) -> Iterable: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def global_random_state() -> dict:
    """Python's, NumPy's and torch's global generators (every CUDA device's too), as tensors
    and plain data (what a checkpoint loaded with ``weights_only=True`` may hold)."""
    numpy_state = np.random.get_state(legacy=False)
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
                       "pos": numpy_state["state"]["pos"], "has_gauss": numpy_state["has_gauss"],
                       "gauss": numpy_state["gauss"]}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_random_state(state: dict) -> None:
    """Put back what ``global_random_state`` took; CUDA's only onto as many devices as it came
    from (a trial resumed on another GPU count keeps its freshly seeded CUDA generators)."""
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    np.random.set_state(("MT19937", numpy["key"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"],
                         numpy["gauss"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def resume_state(scaler: torch.amp.GradScaler | None, batches: Callable[[], Iterable]) -> dict:
    """What a checkpoint carries for resuming besides the model and the loop's objects: the
    global random streams (dropout, the loader's worker seeds), the ``GradScaler``'s state
    (fp16: its scale and growth tracker) and the batches' own streams where they have them."""
    state: dict[str, Any] = {"random": global_random_state()}
    if scaler is not None:
        state["grad_scaler"] = scaler.state_dict()
    if isinstance(batches, ResumableBatches):
        state["batches"] = batches.state_dict()
    return state


def apply_resume_state(state: dict, scaler: torch.amp.GradScaler | None,
                       batches: Callable[[], Iterable]) -> None:
    """Put back what ``resume_state`` saved; a part the checkpoint lacks (one written before it
    was saved, or by a trial without a scaler) stays as the trial started it."""
    if "random" in state:
        set_global_random_state(state["random"])
    if scaler is not None and "grad_scaler" in state:
        scaler.load_state_dict(state["grad_scaler"])
    if "batches" in state and isinstance(batches, ResumableBatches):
        batches.load_state_dict(state["batches"])


def trial_device_and_threads() -> torch.device:
    """The trial's device, with torch's CPU threads set to the CPUs Ray assigned it."""
    cpus = assigned_cpus()
    torch.set_num_threads(max(1, cpus))
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def start_trial(seed: int) -> tuple[float, torch.device]:
    """What every trainable does first: note the start (``time.perf_counter()``, for the
    trial's setup time), seed every generator, and take the trial's device and CPU threads."""
    started = time.perf_counter()
    seed_everything(seed)
    return started, trial_device_and_threads()


def _node_id() -> str:
    """The Ray node a result came from ('' outside Ray), so placement can be checked."""
    try:
        import ray
        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
    except Exception:
        return ""


def assigned_cpus() -> int:
    """The CPUs Ray assigned this trial (all of this machine's outside Ray). Outside Ray, asking
    for the runtime context would start a local Ray instance, so it is not asked."""
    import ray
    if not ray.is_initialized():
        return os.cpu_count() or 1
    try:
        return int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))
    except Exception:
        return os.cpu_count() or 1


class EarlyStopping:
    """Counts epochs without improvement of the monitored metric."""

    def __init__(self, *, patience: int, mode: str) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.patience = patience
        self.mode = mode
        self.best = -math.inf if mode == "max" else math.inf
        self.epochs_without_improvement = 0

    def update(self, value: float) -> bool:
        """Record one epoch's value; True when it is the best so far."""
        improved = math.isfinite(value) and (value > self.best if self.mode == "max" else value < self.best)
        if improved:
            self.best = value
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.epochs_without_improvement >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "epochs_without_improvement": self.epochs_without_improvement}

    def load_state_dict(self, state: dict) -> None:
        self.best = state["best"]
        self.epochs_without_improvement = state["epochs_without_improvement"]


def check_batch_loss(loss: float, what: str = "training loss") -> None:
    if not math.isfinite(loss):
        raise Diverged(f"non-finite {what} ({loss})")


def check_epoch_loss(mean_loss: float, bound: float, what: str = "training loss") -> None:
    """An epoch's mean training loss, or its validation loss, that is non-finite or above
    ``bound`` (the configured multiple of a uniform guess's loss) ends the trial as diverged."""
    check_batch_loss(mean_loss, what)
    if mean_loss > bound:
        raise Diverged(f"mean {what} {mean_loss:.4g} exceeds the divergence bound {bound:.4g}")


class EpochTally:
    """The sample-weighted loss sum and the count of right samples of one epoch, kept where the
    losses are (on the GPU no step waits for them) and read once by ``means``. The sum is fp64,
    so it equals the Python float sum of the batches' ``loss.item() * size`` exactly."""

    def __init__(self) -> None:
        self.loss_sum: torch.Tensor | None = None
        self.count = 0
        self.correct: torch.Tensor | int | None = None

    def add(self, loss: torch.Tensor, size: int, right: torch.Tensor | int | None) -> None:
        weighted = loss.detach().to(torch.float64) * size
        self.loss_sum = weighted if self.loss_sum is None else self.loss_sum + weighted
        self.count += size
        if right is not None:
            self.correct = right if self.correct is None else self.correct + right

    def means(self) -> tuple[float, float | None]:
        """The mean loss (non-finite when any batch's was) and the share of samples right
        (None when no batch counted any)."""
        count = max(self.count, 1)
        mean_loss = 0.0 if self.loss_sum is None else self.loss_sum.item() / count
        return mean_loss, None if self.correct is None else int(self.correct) / count


def autocast(acceleration: Acceleration):
    """The forward pass's mixed-precision context (none in fp32)."""
    if acceleration.autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=acceleration.device_type, dtype=acceleration.autocast_dtype)


def backward_and_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                      scaler: torch.amp.GradScaler | None) -> None:
    """Backpropagate and step; through the scaler, which unscales the gradients before the
    optimiser's step hooks (gradient clipping) run and skips a step with inf or NaN gradients."""
    if scaler is None:
        loss.backward()
        optimizer.step()
        return
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def train_one_epoch(model: nn.Module, batches: Iterable, batch_loss: BatchLoss, optimizer: torch.optim.Optimizer,
                    acceleration: Acceleration = FP32_CPU,
                    scaler: torch.amp.GradScaler | None = None) -> tuple[float, float | None]:
    """One pass over ``batches``: the sample-weighted mean loss, and the share of samples the
    model got right while training (None when ``batch_loss`` counts none).

    With ``acceleration.check_each_step`` (the CPU) it stops at the first non-finite loss.
    Otherwise (CUDA) a non-finite loss is found in the epoch's sum, so the trial still ends as
    diverged, after this epoch's remaining steps: with a ``GradScaler`` (fp16) those steps are
    skipped while the gradients are non-finite; in bf16 they go through and may leave NaN
    weights. Neither changes the outcome: a diverged epoch is never validated, checkpointed or
    passed to the schedules."""
    model.train()
    tally = EpochTally()
    for batch in batches:
        optimizer.zero_grad(set_to_none=True)
        with autocast(acceleration):
            loss, right = batch_loss(model, batch)
        if acceleration.check_each_step:
            check_batch_loss(loss.item())
        backward_and_step(loss, optimizer, scaler)
        tally.add(loss, len(batch[0]), right)
    return tally.means()


def fit(*, model: nn.Module, optimizer: torch.optim.Optimizer, train_batches: Callable[[], Iterable],
        batch_loss: BatchLoss, evaluate: Callable[[nn.Module], dict],
        settings: LoopSettings, meta: dict, report: Callable[..., None] = tune.report,
        trial_started: float | None = None, epoch_extras: Callable[[], dict] | None = None) -> None:
    """Train epoch by epoch, reporting to Tune, until max epochs, early stop or divergence.

    Every epoch reports a checkpoint (model, optimiser, scheduler, loop state, ``resume_state``,
    and ``meta`` as JSON with the monitored value); Tune keeps the best by the monitored metric
    plus the latest, and a restored trial continues from the epoch after its latest checkpoint,
    with the random streams and ``GradScaler`` where they were, so on the CPU it trains exactly
    as an uninterrupted trial would. ``setup_seconds`` in every result is the
    time from ``trial_started`` (the trainable's first line) to the start of training.
    ``epoch_extras``, called after each epoch's validation, adds what the trainable measured
    itself while training (per-component losses, say) to that epoch's result.

    The device is the model's: on CUDA training runs as ``acceleration_for`` says. ``evaluate``
    runs outside autocast, so validation losses and metrics are fp32 as on the CPU.
    """
    quiet_checkpoint_logging()
    acceleration = acceleration_for(model_device(model), channels_last=settings.channels_last)
    prepare_model(model, acceleration, deterministic=settings.deterministic)
    scaler = torch.amp.GradScaler(acceleration.device_type) if acceleration.grad_scaling else None
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=settings.plateau_factor, patience=settings.plateau_patience)
    early = EarlyStopping(patience=settings.early_stopping_patience, mode=settings.mode)
    checkpoint = tune.get_checkpoint()
    first_epoch = checkpoints.restore(checkpoint, model, optimizer, scheduler, early) + 1
    apply_resume_state(checkpoints.resume_extras(checkpoint), scaler, train_batches)
    setup_seconds = time.perf_counter() - (trial_started or time.perf_counter())
    for epoch in range(first_epoch, settings.max_epochs + 1):
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        try:
            train_loss, train_accuracy = train_one_epoch(model, train_batches(), batch_loss, optimizer,
                                                         acceleration, scaler)
            check_epoch_loss(train_loss, settings.divergence_loss)
            val = {f"val_{k}": v for k, v in evaluate(model).items()}
            check_epoch_loss(val["val_loss"], settings.divergence_loss, what="validation loss")
        except Diverged as exc:
            report(_diverged_result(epoch, lr, str(exc), settings.monitor, time.perf_counter() - started))
            return
        scheduler.step(val["val_loss"])
        improved = early.update(val[settings.monitor])
        result = {"epoch": epoch, "train_loss": train_loss,
                  **({} if train_accuracy is None else {"train_accuracy": train_accuracy}),
                  **(epoch_extras() if epoch_extras else {}), **val, "lr": lr,
                  f"best_{settings.monitor}": early.best,
                  "epoch_seconds": time.perf_counter() - started, "setup_seconds": setup_seconds,
                  "node_id": _node_id(), "stop_reason": ""}
        if early.should_stop:
            result["stop_reason"] = STOP_EARLY
        elif epoch == settings.max_epochs:
            result["stop_reason"] = STOP_COMPLETED
        checkpoint_dir = checkpoints.write_checkpoint(epoch, model, optimizer, scheduler, early,
                                                       {**meta, "monitor": settings.monitor,
                                                        "value": val[settings.monitor], "best_so_far": improved},
                                                       resume=resume_state(scaler, train_batches))
        report(result, checkpoint=tune.Checkpoint.from_directory(checkpoint_dir))
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        if result["stop_reason"]:
            return


def _diverged_result(epoch: int, lr: float, reason: str, monitor: str, seconds: float) -> dict:
    return {"epoch": epoch, "train_loss": float("nan"), "val_loss": float("nan"), monitor: float("nan"),
            "lr": lr, "epoch_seconds": seconds, "node_id": _node_id(), "stop_reason": STOP_DIVERGED,
            "divergence_reason": reason}
