"""Checkpoints are untrusted input: ``state.pt`` loads with ``weights_only=True``, a file holding
anything but tensors and plain data is refused before any of it runs, and the report stops."""

from __future__ import annotations

import math
import os
import pickle
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ray import tune
from torch import nn

from trainables.checkpoints import (
    META_FILE,
    STATE_FILE,
    CheckpointError,
    UnsafeCheckpointError,
    load_checkpoint_model,
    restore,
    write_checkpoint,
)
from trainables.engine import EarlyStopping
from trainables.errors import MedsweepError

REPO = Path(__file__).resolve().parents[1]


class Hostile:
    """Unpickling this runs ``command`` in a shell: what a doctored ``state.pt`` would carry."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def write_hostile(path: Path, marker: Path, *, form: str = "torch") -> None:
    """A state file whose loading with ``weights_only=False`` would create ``marker``."""
    payload = {"epoch": 1, "model": Hostile(f"touch {shlex.quote(str(marker))}")}
    if form == "torch":
        torch.save(payload, path)
    elif form == "legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        with open(path, "wb") as file:
            pickle.dump(payload, file)


def hostile_checkpoint(directory: Path, marker: Path, form: str = "torch") -> Path:
    directory.mkdir(parents=True)
    write_hostile(directory / STATE_FILE, marker, form=form)
    (directory / META_FILE).write_text('{"epoch": 1, "task": "test"}')
    return directory


def loop_objects(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=1)
    return model, optimizer, scheduler, EarlyStopping(patience=3, mode="max")


def test_the_hostile_file_is_a_real_payload(tmp_path):
    """The fixture is what the issue describes: PyTorch's own opcode scan (which runs nothing)
    finds the shell call in it."""
    path = hostile_checkpoint(tmp_path / "checkpoint_000000", tmp_path / "marker") / STATE_FILE
    assert any(name.endswith(".system") for name in torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))


@pytest.mark.parametrize("form", ["torch", "legacy", "pickle"])
def test_load_checkpoint_model_refuses_a_hostile_state_file_and_runs_nothing(tmp_path, form):
    marker = tmp_path / "marker"
    checkpoint = hostile_checkpoint(tmp_path / "checkpoint_000000", marker, form)
    with pytest.raises(UnsafeCheckpointError) as caught:
        load_checkpoint_model(checkpoint, nn.Linear(3, 2))
    message = str(caught.value)
    assert isinstance(caught.value, MedsweepError)
    assert str(checkpoint / STATE_FILE) in message
    assert "refused" in message and "not loaded" in message and "hostile" in message
    assert "other than tensors and plain data" in message
    assert not marker.exists()


def test_resuming_from_a_hostile_checkpoint_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "marker"
    checkpoint = hostile_checkpoint(tmp_path / "checkpoint_000000", marker)
    with pytest.raises(UnsafeCheckpointError) as caught:
        restore(tune.Checkpoint.from_directory(str(checkpoint)), *loop_objects())
    assert str(checkpoint / STATE_FILE) in str(caught.value) and "refused" in str(caught.value)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "empty", "junk", "missing", "not_a_checkpoint"])
def test_a_corrupt_or_foreign_state_file_is_a_clear_error_naming_it(tmp_path, monkeypatch, damage):
    monkeypatch.chdir(tmp_path)
    checkpoint = Path(write_checkpoint(1, *loop_objects(), {"task": "test"}))
    path = checkpoint / STATE_FILE
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "junk":
        path.write_bytes(b"not a checkpoint at all")
    elif damage == "missing":
        path.unlink()
    else:
        torch.save({"weights": torch.ones(2)}, path)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint_model(checkpoint, nn.Linear(3, 2))
    # Bytes the safe loader cannot parse as a pickle are refused like a hostile one: it cannot tell.
    assert isinstance(caught.value, UnsafeCheckpointError) == (damage == "junk")
    assert str(path) in str(caught.value) and "not loaded" in str(caught.value)
    with pytest.raises(CheckpointError):
        restore(tune.Checkpoint.from_directory(str(checkpoint)), *loop_objects())


def test_the_engines_own_checkpoint_round_trips_with_weights_only(tmp_path, monkeypatch):
    """Model, optimiser (with its per-parameter state), scheduler and early stopping come back
    from a file ``weights_only=True`` reads with PyTorch's default allowlist alone; numpy
    scalars a trainable's metrics might carry are saved as plain floats."""
    monkeypatch.chdir(tmp_path)
    model, optimizer, scheduler, early = loop_objects()
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    for value in (np.float64(0.9), np.float64(0.8), np.float64(0.85)):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        scheduler.step(value)
        early.update(np.float64(1.0) - value)
    checkpoint = Path(write_checkpoint(3, model, optimizer, scheduler, early, {"task": "test"}))
    path = checkpoint / STATE_FILE

    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) == []
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert set(state) == {"epoch", "model", "optimizer", "scheduler", "early_stopping"}
    assert type(state["early_stopping"]["best"]) is float and type(state["scheduler"]["best"]) is float

    restored = loop_objects(seed=1)
    assert restore(tune.Checkpoint.from_directory(str(checkpoint)), *restored) == 3
    new_model, new_optimizer, new_scheduler, new_early = restored
    for name, tensor in model.state_dict().items():
        assert torch.equal(new_model.state_dict()[name], tensor)
    saved, loaded = optimizer.state_dict(), new_optimizer.state_dict()
    assert loaded["param_groups"] == saved["param_groups"]
    for index, entries in saved["state"].items():
        for key, value in entries.items():
            assert torch.equal(torch.as_tensor(loaded["state"][index][key]), torch.as_tensor(value))
    assert new_scheduler.state_dict() == scheduler.state_dict()
    assert new_early.state_dict() == early.state_dict()
    assert math.isclose(new_early.best, 0.2)

    reloaded, meta = load_checkpoint_model(checkpoint, nn.Linear(3, 2))
    assert torch.equal(reloaded.weight, model.weight) and meta["epoch"] == 3


@pytest.mark.e2e
def test_the_report_refuses_an_experiment_whose_checkpoints_are_hostile(smoke_sweep, shared_data_dir, tmp_path):
    """The issue's reproduction: every ``state.pt`` of the smoke run replaced with a pickle that
    runs a shell command; the real report command must stop with a one-line error naming the
    file, exit 2, and never run the command."""
    experiment = tmp_path / "experiment"
    shutil.copytree(smoke_sweep.experiment_dir, experiment)
    # Predictions an earlier report cached are keyed by each state file's mtime, which the
    # replacement changes anyway; drop them so the checkpoints are certainly read.
    shutil.rmtree(experiment / "analysis_cache", ignore_errors=True)
    marker = tmp_path / "marker"
    state_files = sorted(experiment.rglob(STATE_FILE))
    assert state_files, "the smoke run kept no checkpoints"
    for path in state_files:
        write_hostile(path, marker)

    done = subprocess.run(
        [sys.executable, "-m", "analysis.report", str(experiment), "--seeds", "0", "--top-k", "1",
         "--data-dir", str(shared_data_dir)],
        cwd=REPO, env={**os.environ, "MEDSWEEP_CACHE_DIR": os.environ["MEDSWEEP_CACHE_DIR"]},
        capture_output=True, text=True, timeout=600)

    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    assert "refused" in errors[0] and "not loaded" in errors[0]
    assert any(str(path) in errors[0] for path in state_files), errors[0]
    assert not marker.exists()
    assert not (experiment / "report" / "report.md").exists()


def test_downloaded_detector_weights_load_without_running_code(monkeypatch):
    """torchvision's download cache is a file on disk too: it loads with weights_only=True."""
    import torchvision.models._api as weights_api
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights

    from trainables.config import from_config
    from trainables.detection import DetectionConfig
    from trainables.models.rcnn import read_weights
    seen = {}

    def fake_download(url, *args, **kwargs):
        seen.update(kwargs, url=url)
        return {"weight": torch.zeros(1)}

    monkeypatch.setattr(weights_api, "load_state_dict_from_url", fake_download)
    config = from_config(DetectionConfig, {"pretrained": True})
    assert read_weights(config, MaskRCNN_ResNet50_FPN_Weights.DEFAULT) == {"weight": torch.zeros(1)}
    assert seen["weights_only"] is True
