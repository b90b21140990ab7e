"""The checkpoint files of a trial, and the one place they are read or written.

Every epoch ``fit`` (``trainables.engine``) writes the trial's state — model, optimiser,
scheduler and early-stopping state, and what else resuming needs (the ``GradScaler``'s state and
the random streams') in ``state.pt``, its metadata in ``meta.json`` — to a staging folder that it
hands to Tune (``write_checkpoint``); a restored trial continues from one (``restore``), and the
analysis rebuilds a trained model from one alone (each trainable's ``checkpoint_model``, through
``read_checkpoint_config`` and ``load_checkpoint_model``: no pretrained weights file is read).
Every state file is read through ``read_state`` with
``torch.load(weights_only=True)``, since an experiment directory is untrusted input: a file
holding anything but tensors and plain data is refused (``UnsafeCheckpointError``) before any of
it runs, and one that is missing, truncated or corrupt is a ``CheckpointError``. Kept apart from
the training loop so that what touches these files can be read, and checked, in one place.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainables.errors import MedsweepError

STATE_FILE = "state.pt"
META_FILE = "meta.json"
# Checkpoints are written to a folder of this name in the trial's working directory, handed to
# Tune, then deleted; a trial that Tune stops at its last report never returns to delete it, so
# the driver sweeps these up after the run (sweeps.tuner.remove_checkpoint_staging).
STAGING_PREFIX = ".checkpoint-staging-"


class CheckpointError(MedsweepError, ValueError):
    """A checkpoint's state file that is missing, truncated, corrupt or not one ``fit`` wrote;
    it was not loaded."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint's state file that holds objects other than tensors and plain data, which
    unpickling would construct by running code: refused, never loaded."""


# The entries of a state file a resumed trial needs.
RESUME_KEYS = ("epoch", "model", "optimizer", "scheduler", "early_stopping")
# The entry holding the rest of the resumption state; a checkpoint written before it existed
# lacks it, and resumes with a fresh GradScaler and reseeded random streams, as it did then.
RESUME_EXTRAS = "resume"


def write_checkpoint(epoch, model, optimizer, scheduler, early, meta, *, resume: dict | None = None) -> str:
    """Stage a checkpoint in the trial's working directory (Ray's per-trial scratch space), so a
    trial killed while ``report`` persists it leaves nothing in the machine's /tmp. ``resume``
    holds the rest of what a resumed trial continues from (``engine.resume_state``: the
    ``GradScaler``'s state, the random streams'), plain data and tensors only."""
    directory = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=os.getcwd())
    # Everything but the model's own state dict (tensors only) goes through ``_plain``, so the
    # file holds nothing beyond what ``torch.load(weights_only=True)`` accepts.
    extras = {} if resume is None else {RESUME_EXTRAS: resume}
    torch.save({"epoch": int(epoch), "model": model.state_dict(),
                **_plain({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                          "early_stopping": early.state_dict(), **extras})},
               Path(directory) / STATE_FILE)
    (Path(directory) / META_FILE).write_text(json.dumps({**meta, "epoch": epoch}, indent=2))
    return directory


def restore(checkpoint, model, optimizer, scheduler, early) -> int:
    """Load a Tune checkpoint into the training objects; the epoch it was taken at, or 0. The
    rest of what resuming needs is ``resume_extras``'s."""
    if checkpoint is None:
        return 0
    with checkpoint.as_directory() as directory:
        state = read_state(Path(directory) / STATE_FILE, RESUME_KEYS)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    early.load_state_dict(state["early_stopping"])
    return int(state["epoch"])


def resume_extras(checkpoint) -> dict:
    """A Tune checkpoint's ``resume`` entry (``write_checkpoint``), which the loop puts back
    itself (``engine.apply_resume_state``); empty without a checkpoint, or for one written before
    the entry existed. Read apart from ``restore``, whose signature the loop's callers rely on,
    at the cost of reading a resumed trial's state file twice."""
    if checkpoint is None:
        return {}
    with checkpoint.as_directory() as directory:
        state = read_state(Path(directory) / STATE_FILE, RESUME_KEYS)
    return dict(state.get(RESUME_EXTRAS) or {})


# The config keys that make a model start from pretrained weights. A checkpoint's model is
# rebuilt with them off: its weights come from the checkpoint, so a report on a machine without
# the trial's weights file (or without internet) still loads it.
PRETRAINING_OFF = {"pretrained": False, "pretrained_path": None}


def read_checkpoint_config(directory: Path, config_class: type):
    """The config, with pretraining off (``PRETRAINING_OFF``, for the keys ``config_class``
    has), and the metadata of a checkpoint written by ``fit``."""
    from trainables.config import config_keys, from_config
    meta = json.loads((Path(directory) / META_FILE).read_text())
    off = {key: value for key, value in PRETRAINING_OFF.items() if key in config_keys(config_class)}
    return from_config(config_class, {**meta["config"], **off}), meta


def load_checkpoint_model(directory: Path, model: nn.Module) -> tuple[nn.Module, dict]:
    """The model weights and metadata of a checkpoint written by ``fit`` (for analysis);
    ``read_state`` says what a refused or unreadable state file raises."""
    state = read_state(Path(directory) / STATE_FILE, ("model",))
    model.load_state_dict(state["model"])
    return model, json.loads((Path(directory) / META_FILE).read_text())


def read_state(path: Path, required: Iterable[str] = ("model",)) -> dict:
    """The state dict ``fit`` saved at ``path``, loaded with ``weights_only=True``: tensors,
    numbers, strings, None and containers of them only, so nothing in the file runs. An
    experiment directory is untrusted input (a colleague's run, a download).

    Raises ``UnsafeCheckpointError`` when the file holds any other object (unpickling it could
    run code) and ``CheckpointError`` when it is missing, truncated, corrupt or lacks
    ``required`` keys; either way it was not loaded."""
    path = Path(path)
    state = load_tensors(path)
    missing = [key for key in required if not isinstance(state, dict) or key not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} is not one medsweep wrote (it lacks {', '.join(missing)}); "
                              f"it was not loaded")
    return state


# What to do about a refused experiment checkpoint.
TRUSTED_SOURCES = "only analyse or resume experiment directories from sources you trust"


def load_tensors(path: Path, *, what: str = "checkpoint", fix: str | None = None):
    """``torch.load(path, weights_only=True)`` on the CPU: an experiment's state file, or
    pretrained weights (``what="pretrained_path"``). A refused or unreadable file is the
    one-line error of ``load_error``; ``fix`` says what to do instead."""
    try:
        with warnings.catch_warnings():  # a plain pickle.dump's protocol: refused below if it holds objects
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise load_error(Path(path), exc, what=what, fix=fix) from exc


def load_error(path: Path, exc: BaseException, *, what: str = "checkpoint", fix: str | None = None) -> CheckpointError:
    """The one-line error for a file that ``torch.load(weights_only=True)`` (or a library
    loading it so, as timm does) refused or could not read: ``UnsafeCheckpointError`` when it
    holds objects other than tensors and plain data (PyTorch's ``UnpicklingError``, also as the
    cause of another error), else ``CheckpointError`` (missing, truncated, corrupt, not a torch
    file). ``what`` names the file's role; ``fix`` ends the message."""
    if isinstance(exc, pickle.UnpicklingError) or isinstance(exc.__cause__, pickle.UnpicklingError):
        message = str(exc.__cause__ if isinstance(exc.__cause__, pickle.UnpicklingError) else exc)
        return UnsafeCheckpointError(
            f"refused to load {what} {path}: it holds objects other than tensors and plain data "
            f"(numbers, strings, lists, dicts){_refusal_detail(path, message)}; unpickling such objects "
            f"runs code, so the file may be hostile. It was not loaded and nothing in it ran; "
            f"{fix or TRUSTED_SOURCES}")
    then = f"; {fix}" if fix else ""
    if isinstance(exc, FileNotFoundError):
        return CheckpointError(f"{what} {path} is missing; it was not loaded{then}")
    # miniz's RuntimeError, EOFError, a stray KeyError or IndexError: not a torch file
    reason = (str(exc).strip().splitlines() or [""])[0].split(". ")[0][:200]
    return CheckpointError(f"could not read {what} {path}: the file is truncated, corrupt or not a torch "
                           f"checkpoint ({type(exc).__name__}{f': {reason}' if reason else ''}); it was not "
                           f"loaded{then}")


def _refusal_detail(path: Path, message: str) -> str:
    """What a refused state file holds: the classes or functions it names, from PyTorch's scan
    of its pickle opcodes (which runs none of them), else the reason PyTorch's safe loader gave."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:
        names = re.findall(r"GLOBAL (\S+)", message)
    if names:
        return f", namely {', '.join(dict.fromkeys(names))}"[:200]
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
    reasons = [line.strip() for line in message.splitlines() if line.strip() and not line.startswith(boilerplate)]
    return f" (PyTorch's safe loader: {reasons[0][:150]})" if reasons else ""


def _plain(value):
    """``value`` rebuilt from plain containers (dict, list, tuple), tensors and plain scalars,
    numpy scalars turned into Python ones, so ``torch.load(weights_only=True)`` reads it back
    with no extra allowed globals. Anything else is a bug in medsweep: better refused at saving
    than written into a checkpoint that every later load refuses."""
    if isinstance(value, torch.Tensor) or value is None or type(value) in (bool, int, float, complex, str, bytes):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, tuple):  # a namedtuple (or torch.Size) becomes a plain tuple
        return tuple(_plain(item) for item in value)
    if isinstance(value, (torch.dtype, torch.device)):
        return value
    raise TypeError(f"cannot checkpoint a {type(value).__name__} ({value!r}): only tensors, plain numbers, "
                    f"strings, None and dicts, lists and tuples of them load with weights_only=True")
