"""Resolve a sweep's YAML search space for a profile, apply ``--set`` overrides, validate.

Everything here runs before Ray starts, so a typo costs a second, not a cluster start-up.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any

import yaml

from search_spaces import search_space_path
from sweeps.registry import AshaSettings, Resources, SweepSpec
from trainables.config import ConfigError, check_field_types, config_keys, from_config, require_choice
from trainables.datasets import DATASETS, get_dataset_entry
from trainables.datasets.chestmnist import SIZES as CHESTMNIST_SIZES
from trainables.datasets.leakage_policy import LEAKAGE_POLICIES
from trainables.registry import get_trainable
from trainables.errors import MedsweepError

PROFILES = ("auto", "cpu", "full")
SECTIONS = ("data", "fixed", "grid", "profiles")
# The smallest image (or patch) side any dataset reader accepts; detection needs 8 pixels.
MIN_IMAGE_SIZE = 8
# Datasets that exist at a few image sizes only (MedMNIST publishes ChestMNIST at these).
FIXED_IMAGE_SIZES = {"chestmnist": CHESTMNIST_SIZES}
SPLIT_NAMES = ("train", "val", "test")
# Data settings handed to a dataset's prepare function only when set, by these keyword names.
PREPARE_KEYWORDS = {"split_fractions": "fractions", "bilateral": "bilateral", "annotations": "annotations",
                    "leakage": "leakage"}


class SearchSpaceError(MedsweepError, ValueError):
    """A search-space file or ``--set`` override that cannot be used."""


@dataclass(frozen=True)
class DataSettings:
    """How the driver prepares data once per sweep (not a per-trial setting).
    ``split_fractions`` (train, val, test) overrides the dataset's own split where it makes one;
    ``bilateral`` smooths detection images with a bilateral filter before any preprocessing;
    ``annotations`` names a detection dataset's VIA/COCO JSON file inside its data directory.

    Every value is checked on construction (types as ``from_config`` checks trial configs, then
    ranges), so a bad setting is a ConfigError naming its key before any data is read.
    """

    dataset: str
    image_size: int
    padding: int = 10
    images_per_split: int | None = None
    split_fractions: list[float] | None = None
    bilateral: bool = False
    annotations: str | None = None
    leakage: str | None = None     # warn, group, drop or fail; None: the dataset's default

    def __post_init__(self) -> None:
        check_field_types(self, label="data setting")
        require_choice("dataset", self.dataset, sorted(DATASETS))
        check_image_size(self.dataset, self.image_size)
        if self.padding < 0:
            raise ConfigError(f"data setting 'padding' must be a whole number of pixels, 0 or more, "
                              f"got {self.padding!r}", key="padding")
        if self.images_per_split is not None and self.images_per_split < 1:
            raise ConfigError(f"data setting 'images_per_split' must be a whole number of at least 1, or null "
                              f"for every image, got {self.images_per_split!r}", key="images_per_split")
        if self.split_fractions is not None:
            check_split_fractions(self.split_fractions)
        if self.annotations is not None:
            check_annotations(self.annotations)
        if self.leakage is not None:
            require_choice("leakage", self.leakage, LEAKAGE_POLICIES)
        check_dataset_takes(self)


def check_dataset_takes(settings: DataSettings) -> None:
    """Each optional setting that is set must be one the dataset's preparation takes (a bilateral
    filter means nothing to patch classification, and would fail deep in the data audit)."""
    for key, keyword in PREPARE_KEYWORDS.items():
        value = getattr(settings, key)
        if value is not None and value is not False and not _prepare_takes(settings.dataset, keyword):
            takers = [name for name in sorted(DATASETS) if _prepare_takes(name, keyword)]
            raise ConfigError(f"data setting {key!r} does not apply to dataset {settings.dataset} (only to "
                              f"{', '.join(takers)}), got {value!r}; remove it", key=key)


def _prepare_takes(dataset: str, keyword: str) -> bool:
    return keyword in inspect.signature(get_dataset_entry(dataset).prepare).parameters


def check_image_size(dataset: str, image_size: int) -> None:
    """At least ``MIN_IMAGE_SIZE`` pixels, and one of the dataset's sizes where it has fixed ones."""
    if image_size < MIN_IMAGE_SIZE:
        raise ConfigError(f"data setting 'image_size' must be a whole number of pixels, at least "
                          f"{MIN_IMAGE_SIZE}, got {image_size!r}", key="image_size")
    sizes = FIXED_IMAGE_SIZES.get(dataset)
    if sizes and image_size not in sizes:
        raise ConfigError(f"data setting 'image_size' must be one of {', '.join(map(str, sizes))} for {dataset} "
                          f"(the sizes it is published at), got {image_size!r}", key="image_size")


def check_split_fractions(fractions: list[float]) -> None:
    """Three positive fractions (train, val, test) that sum to 1."""
    if len(fractions) != len(SPLIT_NAMES) or min(fractions) <= 0 or not math.isclose(sum(fractions), 1.0,
                                                                                      abs_tol=1e-6):
        raise ConfigError(f"data setting 'split_fractions' must be {len(SPLIT_NAMES)} positive numbers "
                          f"({', '.join(SPLIT_NAMES)}) summing to 1, for example [0.7, 0.15, 0.15], "
                          f"got {fractions!r}", key="split_fractions")


def check_annotations(name: str) -> None:
    """A file name or a relative path that stays inside the data directory."""
    path = PureWindowsPath(name)  # splits on both / and \, and sees drives and leading slashes
    if not name.strip() or path.anchor or ".." in path.parts:
        raise ConfigError(f"data setting 'annotations' must be a file name or a relative path inside the data "
                          f"directory (not empty, not absolute, no '..'), for example via_project.json, "
                          f"got {name!r}", key="annotations")


DATA_KEYS = tuple(f.name for f in dataclasses.fields(DataSettings))
# Data settings whose one value is a list (so --set split_fractions=[0.6,0.2,0.2] is not an axis).
LIST_DATA_KEYS = ("split_fractions",)


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
    check_grid_axes(grid, path)
    config_class = get_trainable(spec.trainable).config_class
    trial_keys = sweep_trial_keys(config_class, data.get("dataset"), path)
    sources: dict[str, str] = {}
    for item in overrides:
        key, value = parse_override(item)
        _apply_override(key, value, data, fixed, grid, trial_keys)
        sources[key] = f"--set {item}"
    resources = spec.resources["cpu" if (profile == "cpu" or smoke) else "full"]
    resolved = ResolvedSweep(spec=spec, profile=profile, smoke=smoke, data=data_settings(data, path, sources),
                             fixed=fixed, grid={k: list(v) for k, v in grid.items()}, asha=AshaSettings(**asha),
                             resources=resources, overrides=tuple(overrides))
    validate_configs(resolved, config_class, path, sources)
    return resolved


def check_grid_axes(grid: Mapping[str, Any], path: Path) -> None:
    """Each grid axis of the file is a non-empty list (an empty one would make a sweep of no trials)."""
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise SearchSpaceError(f"{path}: grid.{key} must be a non-empty list of values, got {values!r}; "
                                   f"put a single value under fixed: instead")


def data_settings(data: Mapping[str, Any], path: Path, sources: Mapping[str, str]) -> DataSettings:
    """The validated data settings; an error names the ``--set`` item or the file the bad value came from."""
    try:
        return DataSettings(**data)
    except TypeError as exc:
        raise SearchSpaceError(f"{path}: bad data section ({exc}); valid keys: {', '.join(DATA_KEYS)}") from exc
    except ConfigError as exc:
        raise SearchSpaceError(f"{source_of(exc, path, sources)}: {exc}") from exc


def source_of(exc: ConfigError, path: Path, sources: Mapping[str, str]) -> str:
    """Where the value at fault came from: the ``--set`` item that set the error's key, else the
    search-space file. An error about several keys at once names the file and every ``--set``."""
    if exc.key in sources:
        return sources[exc.key]
    if exc.key is None and sources:
        return f"{path} with {', '.join(sources.values())}"
    return str(path)


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
        if isinstance(value, list) and key not in LIST_DATA_KEYS:
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


def validate_configs(resolved: ResolvedSweep, config_class: type, path: Path,
                     sources: Mapping[str, str]) -> None:
    """Build every trial's config dataclass now, so bad values fail before Ray starts; an error
    names the ``--set`` item or the file the bad value came from (``sources``: key → item)."""
    axis = variant_axis(resolved)
    for config in resolved.configs():
        try:
            from_config(config_class, {k: v for k, v in config.items() if k != axis})
        except ConfigError as exc:
            raise SearchSpaceError(f"{source_of(exc, path, sources)}: {exc}") from exc


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
