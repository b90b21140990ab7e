"""Ray's config dict → a frozen, validated dataclass, on the first line of every trainable."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar
from trainables.errors import MedsweepError

T = TypeVar("T")


class ConfigError(MedsweepError, ValueError):
    """A config key or value a trainable cannot accept."""


def require_choice(key: str, value: Any, choices) -> None:
    """``value`` must be one of ``choices`` (a registry dict or a tuple of names)."""
    if value not in choices:
        raise ConfigError(f"{key} {value!r} is unknown; valid: {', '.join(choices)}")


def require_positive(config: Any, keys: tuple[str, ...]) -> None:
    for key in keys:
        if getattr(config, key) <= 0:
            raise ConfigError(f"config key {key!r} must be positive, got {getattr(config, key)!r}")


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
    values = {key: _coerce(key, value, hints[key]) for key, value in config.items()}
    return cls(**values)


def _coerce(key: str, value: Any, hint: Any) -> Any:
    allowed = _allowed_types(hint)
    if value is None and type(None) in allowed:
        return None
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, tuple(t for t in allowed if t is not type(None))) or (
            isinstance(value, bool) and bool not in allowed):
        names = " or ".join(t.__name__ for t in allowed)
        raise ConfigError(f"config key {key!r} must be {names}, got {value!r}")
    return value


def _allowed_types(hint: Any) -> tuple[type, ...]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(typing.get_args(hint))
    return (hint,)
