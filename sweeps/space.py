"""Resolve a sweep's YAML search space for a profile, apply ``--set`` overrides, validate.

Everything here runs before Ray starts, so a typo costs a second, not a cluster start-up.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from search_spaces import search_space_path
from sweeps.registry import AshaSettings, Resources, SweepSpec
from trainables.config import ConfigError, config_keys, from_config
from trainables.datasets import get_dataset_entry
from trainables.registry import get_trainable
from trainables.errors import MedsweepError

PROFILES = ("auto", "cpu", "full")
SECTIONS = ("data", "fixed", "grid", "profiles")


class SearchSpaceError(MedsweepError, ValueError):
    """A search-space file or ``--set`` override that cannot be used."""


@dataclass(frozen=True)
class DataSettings:
    """How the driver prepares data once per sweep (not a per-trial setting).
    ``split_fractions`` (train, val, test) overrides the dataset's own split where it makes one;
    ``bilateral`` smooths detection images with a bilateral filter before any preprocessing."""

    dataset: str
    image_size: int
    padding: int = 10
    images_per_split: int | None = None
    split_fractions: list[float] | None = None
    bilateral: bool = False


DATA_KEYS = tuple(f.name for f in dataclasses.fields(DataSettings))


@dataclass(frozen=True)
class ResolvedSweep:
    """A sweep ready to run: spec, profile, data settings, fixed values and grid axes."""

    spec: SweepSpec
    profile: str
    smoke: bool
    data: DataSettings
    fixed: dict[str, Any]
    grid: dict[str, list]
    asha: AshaSettings
    resources: Resources
    overrides: tuple[str, ...] = field(default=())

    @property
    def grid_size(self) -> int:
        size = 1
        for values in self.grid.values():
            size *= len(values)
        return size

    @property
    def max_epochs(self) -> int:
        return int(max(self.grid.get("max_epochs", [self.fixed.get("max_epochs", 1)])))

    def configs(self) -> Iterator[dict[str, Any]]:
        """Every trial config of one pass over the grid, in grid order."""
        keys = list(self.grid)
        for values in itertools.product(*(self.grid[k] for k in keys)):
            yield {**self.fixed, **dict(zip(keys, values))}

    def param_space(self) -> dict[str, Any]:
        from ray import tune
        return {**self.fixed, **{k: tune.grid_search(list(v)) for k, v in self.grid.items()}}

    def to_dict(self) -> dict:
        return {"sweep": self.spec.name, "profile": self.profile, "smoke": self.smoke,
                "data": dataclasses.asdict(self.data), "fixed": self.fixed, "grid": self.grid,
                "asha": dataclasses.asdict(self.asha), "resources": dataclasses.asdict(self.resources),
                "metric": self.spec.metric, "mode": self.spec.mode, "overrides": list(self.overrides)}


def load_yaml(path: Path) -> dict:
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SearchSpaceError(f"{path}: not valid YAML ({exc})") from exc
    unknown = sorted(set(doc) - set(SECTIONS))
    if unknown:
        raise SearchSpaceError(f"{path}: unknown section(s) {unknown}; valid sections: {', '.join(SECTIONS)}")
    return doc


def resolve(spec: SweepSpec, *, profile: str, smoke: bool = False, overrides: tuple[str, ...] = (),
            path: Path | None = None) -> ResolvedSweep:
    """The sweep's search space for ``profile`` (``cpu`` or ``full``), smoke-sized if asked,
    with ``key=value`` overrides applied and every trial config validated."""
    if profile not in ("cpu", "full"):
        raise SearchSpaceError(f"profile must be 'cpu' or 'full' here, got {profile!r}")
    path = path or search_space_path(spec.search_space)
    doc = load_yaml(path)
    data, fixed, grid = dict(doc.get("data", {})), dict(doc.get("fixed", {})), dict(doc.get("grid", {}))
    asha = dataclasses.asdict(spec.asha)
    layers = (["cpu"] if profile == "cpu" or smoke else []) + (["smoke"] if smoke else [])
    for layer in layers:
        override = doc.get("profiles", {}).get(layer)
        if override is None:
            raise SearchSpaceError(f"{path}: profiles.{layer} is missing")
        data |= override.get("data", {})
        fixed |= override.get("fixed", {})
        for key, values in override.get("grid", {}).items():
            grid[key] = values
        asha |= override.get("asha", {})
    for key in fixed:
        grid.pop(key, None)
    config_class = get_trainable(spec.trainable).config_class
    trial_keys = sweep_trial_keys(config_class, data.get("dataset"), path)
    for item in overrides:
        key, value = parse_override(item)
        _apply_override(key, value, data, fixed, grid, trial_keys)
    resources = spec.resources["cpu" if (profile == "cpu" or smoke) else "full"]
    try:
        settings = DataSettings(**data)
    except TypeError as exc:
        raise SearchSpaceError(f"{path}: bad data section ({exc}); valid keys: {', '.join(DATA_KEYS)}") from exc
    resolved = ResolvedSweep(spec=spec, profile=profile, smoke=smoke, data=settings, fixed=fixed,
                             grid={k: list(v) for k, v in grid.items()}, asha=AshaSettings(**asha),
                             resources=resources, overrides=tuple(overrides))
    validate_configs(resolved, config_class, path)
    return resolved


def sweep_trial_keys(config_class: type, dataset: str | None, path: Path) -> list[str]:
    """Keys a trial config may hold: the trainable's, plus the dataset's variant axis."""
    try:
        axis = get_dataset_entry(str(dataset)).variant_axis
    except KeyError as exc:
        raise SearchSpaceError(f"{path}: data.dataset: {exc.args[0]}") from exc
    return config_keys(config_class) + ([axis] if axis else [])


def variant_axis(resolved: ResolvedSweep) -> str | None:
    return get_dataset_entry(resolved.data.dataset).variant_axis


def parse_override(item: str) -> tuple[str, Any]:
    """``key=value`` with the value read as YAML (``lr=[1e-3,3e-4]`` is a list)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise SearchSpaceError(f"--set {item!r}: expected key=value, for example --set lr=[1e-3,3e-4]")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise SearchSpaceError(f"--set {item!r}: cannot read the value ({exc})") from exc
    if isinstance(value, str):
        value = _yaml_number(value)
    if isinstance(value, list):
        value = [_yaml_number(v) if isinstance(v, str) else v for v in value]
    return key.strip(), value


def _yaml_number(text: str) -> Any:
    """YAML 1.1 reads ``1e-3`` as a string; numbers written that way are meant as floats."""
    try:
        return float(text)
    except ValueError:
        return text


def _apply_override(key: str, value: Any, data: dict, fixed: dict, grid: dict, trial_keys: list[str]) -> None:
    if key in DATA_KEYS:
        if isinstance(value, list):
            raise SearchSpaceError(f"--set {key}: data settings take one value, not a list")
        data[key] = value
    elif key in trial_keys:
        if isinstance(value, list):
            if not value:
                raise SearchSpaceError(f"--set {key}=[]: an axis needs at least one value")
            grid[key] = value
            fixed.pop(key, None)
        else:
            fixed[key] = value
            grid.pop(key, None)
    else:
        valid = sorted(set(trial_keys) | set(DATA_KEYS))
        raise SearchSpaceError(f"--set {key}: unknown key; valid keys: {', '.join(valid)}")


def validate_configs(resolved: ResolvedSweep, config_class: type, path: Path) -> None:
    """Build every trial's config dataclass now, so bad values fail before Ray starts."""
    axis = variant_axis(resolved)
    for config in resolved.configs():
        try:
            from_config(config_class, {k: v for k, v in config.items() if k != axis})
        except ConfigError as exc:
            raise SearchSpaceError(f"{path}: {exc}") from exc


def grid_size_of(spec: SweepSpec) -> int:
    doc = load_yaml(search_space_path(spec.search_space))
    return ResolvedSweep(spec=spec, profile="full", smoke=False, data=DataSettings(**doc["data"]),
                         fixed=doc.get("fixed", {}), grid=doc.get("grid", {}), asha=spec.asha,
                         resources=spec.resources["full"]).grid_size


def from_saved(spec: SweepSpec, saved: Mapping[str, Any]) -> ResolvedSweep:
    """Rebuild the exact resolved sweep an experiment ran with (for ``--resume`` and analysis)."""
    return ResolvedSweep(spec=spec, profile=saved["profile"], smoke=saved["smoke"],
                         data=DataSettings(**saved["data"]), fixed=dict(saved["fixed"]),
                         grid={k: list(v) for k, v in saved["grid"].items()},
                         asha=AshaSettings(**saved["asha"]), resources=Resources(**saved["resources"]),
                         overrides=tuple(saved.get("overrides", ())))
