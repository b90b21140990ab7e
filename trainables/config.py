"""Ray's config dict → a frozen, validated dataclass, on the first line of every trainable."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from trainables.errors import MedsweepError

T = TypeVar("T")
# What _as_type returns for a value that is not of the asked type (None is a valid value).
_MISMATCH = object()


class ConfigError(MedsweepError, ValueError):
    """A config key or value a trainable cannot accept. ``key`` names the setting when that
    setting alone is at fault, so a caller can say where its value came from (a file, ``--set``)."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class LoopConfig:
    """The settings every trainable's config shares with the training loop (``engine.fit``),
    checked once here; each task's config derives from it, calls ``super().__post_init__()``
    and redeclares ``lr``, ``batch_size``, ``eval_batch_size`` and ``max_epochs`` with its own
    study's defaults.

    The learning rate drops by ``plateau_factor`` after ``plateau_patience`` epochs without
    improvement of the monitored metric; training stops after ``early_stopping_patience`` such
    epochs, or when the training loss exceeds ``divergence_factor`` times an uninformed model's.
    ``deterministic`` asks for deterministic algorithms only, without cuDNN autotuning.
    """

    lr: float
    batch_size: int
    eval_batch_size: int
    max_epochs: int
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    early_stopping_patience: int = 10
    divergence_factor: float = 10.0
    seed: int = 42
    deterministic: bool = False

    def __post_init__(self) -> None:
        require_positive(self, ("lr", "batch_size", "eval_batch_size", "max_epochs", "divergence_factor"))
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"config key 'seed' must be a whole number from 0 to {2**32 - 1} (NumPy's seeds "
                              f"are 32-bit), got {self.seed!r}", key="seed")


def require_choice(key: str, value: Any, choices) -> None:
    """``value`` must be one of ``choices`` (a registry dict or a tuple of names)."""
    if value not in choices:
        raise ConfigError(f"{key} {value!r} is unknown; valid: {', '.join(choices)}", key=key)


def require_positive(config: Any, keys: tuple[str, ...]) -> None:
    for key in keys:
        if getattr(config, key) <= 0:
            raise ConfigError(f"config key {key!r} must be positive, got {getattr(config, key)!r}", key=key)


def require_epoch_samples(value: int | None) -> None:
    """``epoch_samples``: how many training samples an epoch draws, or None (null) for one full
    pass over the training split; zero or fewer would train on nothing."""
    if value is not None and value <= 0:
        raise ConfigError(f"config key 'epoch_samples' must be a positive number of samples, or null for one "
                          f"full pass over the training split, got {value!r}", key="epoch_samples")


def config_keys(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def from_config(cls: type[T], config: Mapping[str, Any]) -> T:
    """Build the frozen dataclass ``cls`` from ``config``.

    Unknown keys and values of the wrong type are errors naming the key and the valid keys,
    so a typo in a search space fails on the first trial instead of being silently ignored.
    """
    valid = config_keys(cls)
    unknown = sorted(set(config) - set(valid))
    if unknown:
        raise ConfigError(f"unknown config key(s) {unknown} for {cls.__name__}; "
                          f"valid keys: {', '.join(valid)}")
    hints = typing.get_type_hints(cls)
    values = {key: _coerce(key, value, hints[key], label="config key") for key, value in config.items()}
    return cls(**values)


def check_field_types(instance: Any, *, label: str) -> None:
    """Check every field of the dataclass ``instance`` against its type hint exactly as
    ``from_config`` checks a config, ints becoming floats where floats are declared.

    For dataclasses that validate themselves on construction (call it first in
    ``__post_init__``); ``label`` names the kind of setting in messages ("data setting").
    """
    hints = typing.get_type_hints(type(instance))
    for field in dataclasses.fields(instance):
        value = _coerce(field.name, getattr(instance, field.name), hints[field.name], label=label)
        object.__setattr__(instance, field.name, value)


def _coerce(key: str, value: Any, hint: Any, *, label: str) -> Any:
    """``value`` as one of the types ``hint`` allows (bool is not int; an int is a float where
    a float is allowed), finite where it is a float; anything else is a ConfigError."""
    allowed = _allowed_types(hint)
    for kind in allowed:
        converted = _as_type(value, kind)
        if converted is not _MISMATCH:
            if not _finite(converted):
                raise ConfigError(f"{label} {key!r} must be a finite number, got {value!r}", key=key)
            return converted
    names = " or ".join(_type_name(kind) for kind in allowed)
    raise ConfigError(f"{label} {key!r} must be {names}, got {value!r}", key=key)


def _as_type(value: Any, kind: Any) -> Any:
    """``value`` converted to ``kind`` (a class, ``None``'s type or ``list[element]``), or
    ``_MISMATCH``."""
    if typing.get_origin(kind) is list:
        if not isinstance(value, list):
            return _MISMATCH
        element = typing.get_args(kind)[0]
        items = [_as_type(item, element) for item in value]
        return _MISMATCH if any(item is _MISMATCH for item in items) else items
    if isinstance(value, bool) and kind is not bool:
        return _MISMATCH
    if kind is float and isinstance(value, int):
        return float(value)
    return value if isinstance(value, kind) else _MISMATCH


def _finite(value: Any) -> bool:
    """False for inf and nan, alone or inside a list; True for anything else."""
    if isinstance(value, list):
        return all(_finite(item) for item in value)
    return not isinstance(value, float) or math.isfinite(value)


def _type_name(kind: Any) -> str:
    if kind is type(None):
        return "null"
    if typing.get_origin(kind) is list:
        return f"a list of {_type_name(typing.get_args(kind)[0])}"
    return kind.__name__


def _allowed_types(hint: Any) -> tuple[type, ...]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(typing.get_args(hint))
    return (hint,)
