"""Resolve a sweep's YAML search space for a profile, apply ``--set`` overrides, validate.

Everything here runs before Ray starts, so a typo costs a second, not a cluster start-up.

A grid axis is either a list of values, or a mapping that adds a range for samplers::

    grid:
      weighted_loss: [false, true]                 # grid: both; optuna: a choice of the two
      lr: {values: [1.0e-4, 1.0e-3], loguniform: [1.0e-5, 1.0e-2]}  # grid: the values; optuna: the range
      dropout: {uniform: [0.0, 0.5]}               # optuna only: --search grid stops with an error
      depth: {int: [2, 8]}                         # whole numbers, both ends included
      width: {int: [16, 256], log: true}           # whole numbers drawn log-uniformly
      model: {choice: [resnet18, resnet50, vit_s]} # categorical, for samplers; the grid needs values

``--search grid`` tries an axis's ``values`` (the list itself, for a plain list); ``--search optuna``
draws from its range (``tune.loguniform``/``uniform``/``randint``/``lograndint``/``choice``), or
chooses among its values when it has no range. Listed values must lie inside the axis's range.
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
from sweeps.ranges import AXIS_KEYS, RANGE_SYNTAX, Range, yaml_number
from sweeps.spec import SPACE_SECTIONS, STUDY_SECTIONS, AshaSettings, Resources, SweepSpec
from trainables.config import ConfigError, check_field_types, config_keys, from_config, require_choice
from trainables.datasets import DATASETS, FIXED_SPLIT_DATASETS, get_dataset_entry
from trainables.datasets.chestmnist import SIZES as CHESTMNIST_SIZES
from trainables.datasets.options import DatasetOptions
from trainables.errors import SearchSpaceError
from trainables.registry import get_trainable

# A search-space file, or a study file (whose study sections sweeps.study_file reads).
SECTIONS = (*SPACE_SECTIONS, *STUDY_SECTIONS)
# The smallest image (or patch) side any dataset reader accepts; detection needs 8 pixels.
MIN_IMAGE_SIZE = 8
# Datasets that exist at a few image sizes only (MedMNIST publishes ChestMNIST at these).
FIXED_IMAGE_SIZES = {"chestmnist": CHESTMNIST_SIZES}


@dataclass(frozen=True)
class DataSettings:
    """How the driver prepares data once per sweep (not a per-trial setting): the dataset, its
    image size, how many source images per split to keep (None: all), and ``options``, the
    dataset's own options (its registry entry's options class: BCCD's ``padding``, Taleqani's
    ``split_fractions``, the detection datasets' ``bilateral`` …; see ``data_keys``).

    Every value is checked on construction (types as ``from_config`` checks trial configs, then
    ranges), so a bad setting is a ConfigError naming its key before any data is read. A data
    section (the YAML's, ``--set``'s, ``sweep.json``'s) becomes one through ``from_mapping``.
    """

    dataset: str
    image_size: int
    options: DatasetOptions
    images_per_split: int | None = None

    def __post_init__(self) -> None:
        check_field_types(self, label="data setting")
        require_choice("dataset", self.dataset, sorted(DATASETS))
        expected = get_dataset_entry(self.dataset).options
        if type(self.options) is not expected:
            raise ConfigError(f"the options of dataset {self.dataset} must be a {expected.__name__}, got "
                              f"{self.options!r}", key="options")
        check_image_size(self.dataset, self.image_size)
        if getattr(self.options, "leakage", None) == "group" and self.dataset in FIXED_SPLIT_DATASETS:
            raise ConfigError(f"data setting 'leakage' cannot be 'group' for {self.dataset}: its splits are fixed "
                              f"by the dataset, so duplicates cannot be moved into one split; use warn, drop or "
                              f"fail", key="leakage")
        if self.images_per_split is not None and self.images_per_split < 1:
            raise ConfigError(f"data setting 'images_per_split' must be a whole number of at least 1, or null "
                              f"for every image, got {self.images_per_split!r}", key="images_per_split")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> DataSettings:
        """The settings of a flat data section: ``dataset`` and ``image_size`` (both required),
        ``images_per_split``, and the dataset's options by name. A key the dataset does not
        have is an error listing the ones it has."""
        missing = [key for key in ("dataset", "image_size") if key not in data]
        if missing:
            raise ConfigError(f"the data section must set {' and '.join(missing)}, for example "
                              f"dataset: bccd and image_size: 224", key=missing[0])
        require_choice("dataset", data["dataset"], sorted(DATASETS))
        dataset = data["dataset"]
        for key, value in data.items():
            if key not in data_keys(dataset):
                raise ConfigError(_not_a_data_key(dataset, key, value), key=key)
        options = get_dataset_entry(dataset).options(**{k: v for k, v in data.items() if k not in DATA_KEYS})
        return cls(dataset=dataset, image_size=data["image_size"], options=options,
                   images_per_split=data.get("images_per_split"))

    def to_dict(self) -> dict[str, Any]:
        """The flat data section ``from_mapping`` reads back (for ``sweep.json``)."""
        options = {k: v for k, v in self.options.keywords().items() if k in data_keys(self.dataset)}
        return {"dataset": self.dataset, "image_size": self.image_size, "images_per_split": self.images_per_split,
                **options}

    def variant_options(self, value: Any) -> DatasetOptions:
        """The options a data variant is prepared with: the dataset's variant axis set to
        ``value``, or the options as they are for None (a dataset without variants)."""
        if value is None:
            return self.options
        return dataclasses.replace(self.options, **{get_dataset_entry(self.dataset).variant_axis: value})


# The data settings every dataset has; the rest of a data section is the dataset's options.
DATA_KEYS = ("dataset", "image_size", "images_per_split")


def data_keys(dataset: str) -> tuple[str, ...]:
    """The keys a data section for ``dataset`` may hold: the common ones, then the fields of
    its options class except its variant axis (a trial key, set under fixed: or grid:)."""
    entry = get_dataset_entry(dataset)
    return DATA_KEYS + tuple(key for key in entry.options.keys() if key != entry.variant_axis)


def any_data_key(key: str) -> bool:
    """Whether ``key`` is a data setting of some dataset (so ``--set key=…`` is one)."""
    return any(key in data_keys(name) for name in DATASETS)


def _not_a_data_key(dataset: str, key: str, value: Any) -> str:
    """Why ``key`` cannot be in ``dataset``'s data section, and the keys that can."""
    valid = f"valid data settings for {dataset}: {', '.join(data_keys(dataset))}"
    if key == get_dataset_entry(dataset).variant_axis:
        return (f"data setting {key!r} selects {dataset}'s data variant per trial; set it under fixed: or grid: "
                f"(or with --set {key}=...), not under data:; {valid}")
    takers = [name for name in sorted(DATASETS) if key in data_keys(name)]
    if takers:
        return (f"data setting {key!r} does not apply to dataset {dataset} (only to {', '.join(takers)}), "
                f"got {value!r}; remove it; {valid}")
    return f"unknown data setting {key!r}; {valid}"


def check_image_size(dataset: str, image_size: int) -> None:
    """At least ``MIN_IMAGE_SIZE`` pixels, and one of the dataset's sizes where it has fixed ones."""
    if image_size < MIN_IMAGE_SIZE:
        raise ConfigError(f"data setting 'image_size' must be a whole number of pixels, at least "
                          f"{MIN_IMAGE_SIZE}, got {image_size!r}", key="image_size")
    sizes = FIXED_IMAGE_SIZES.get(dataset)
    if sizes and image_size not in sizes:
        raise ConfigError(f"data setting 'image_size' must be one of {', '.join(map(str, sizes))} for {dataset} "
                          f"(the sizes it is published at), got {image_size!r}", key="image_size")


# The flat data fields sweep.json recorded for every dataset before each had its own options
# class; an experiment written then holds all of them, whether its dataset read them or not.
LEGACY_DATA_KEYS = ("padding", "split_fractions", "bilateral", "annotations", "leakage")


def saved_data_settings(saved: Mapping[str, Any]) -> DataSettings:
    """The data settings ``sweep.json`` recorded. From an experiment written before datasets
    had their own options, a legacy field the dataset does not declare is left out (the old
    code ignored ``padding`` there and refused the others when set), and so is a legacy field
    recorded as null (unset: the dataset's default)."""
    dataset = saved.get("dataset")
    declared = data_keys(dataset) if dataset in DATASETS else ()
    return DataSettings.from_mapping({key: value for key, value in saved.items()
                                      if key not in LEGACY_DATA_KEYS or (key in declared and value is not None)})


@dataclass(frozen=True)
class ResolvedSweep:
    """A sweep ready to run: spec, profile, data settings, fixed values, grid axes (their values)
    and ranges (what samplers draw for an axis; an axis may have values, a range, or both)."""

    spec: SweepSpec
    profile: str
    smoke: bool
    data: DataSettings
    fixed: dict[str, Any]
    grid: dict[str, list]
    asha: AshaSettings
    resources: Resources
    overrides: tuple[str, ...] = field(default=())
    ranges: dict[str, Range] = field(default_factory=dict)
    search: str = "grid"

    @property
    def axes(self) -> list[str]:
        """Every searched key: the grid's axes, then axes that only have a range."""
        return list(self.grid) + [k for k in self.ranges if k not in self.grid]

    @property
    def grid_size(self) -> int:
        """Grid points (axes with values); a range-only axis adds none."""
        size = 1
        for values in self.grid.values():
            size *= len(values)
        return size

    @property
    def max_epochs(self) -> int:
        """The most epochs any trial can train (ASHA's ``max_t``, the forecast's budget)."""
        return int(max(config.get("max_epochs", 1) for config in self.possible_configs()))

    def configs(self) -> Iterator[dict[str, Any]]:
        """Every trial config of one pass over the grid, in grid order."""
        keys = list(self.grid)
        for values in itertools.product(*(self.grid[k] for k in keys)):
            yield {**self.fixed, **dict(zip(keys, values))}

    def possible_configs(self) -> Iterator[dict[str, Any]]:
        """What any trial of this sweep can get, extremes included: the grid's points under
        ``--search grid``; under a sampler every combination of each axis's choices, a ranged
        axis contributing its range's endpoints (or categories). Whatever sizes the sweep from
        its configs (ASHA's ``max_t``, batch-size calibration, the weights preflight, the
        forecast) reads these, so an axis given only as a range is not invisible to it."""
        if self.search == "grid":
            yield from self.configs()
            return
        choices = {k: self.ranges[k].endpoints() if k in self.ranges else list(self.grid[k]) for k in self.axes}
        for values in itertools.product(*choices.values()):
            yield {**self.fixed, **dict(zip(choices, values))}

    def param_space(self) -> dict[str, Any]:
        """The grid as Tune's ``grid_search`` over each axis's values."""
        from ray import tune
        self.require_grid_values()
        return {**self.fixed, **{k: tune.grid_search(list(v)) for k, v in self.grid.items()}}

    def require_grid_values(self) -> None:
        """A range without values gives the grid nothing to try: say which axis and how to fix it."""
        for axis, drawn in self.ranges.items():
            if axis not in self.grid:
                raise SearchSpaceError(
                    f"{drawn.source}: grid.{axis} is a {drawn.kind} range with no values, so --search grid has "
                    f"nothing to try; add the grid's points as values: [...] next to the range, or run with "
                    f"--search optuna")

    def sampler_space(self) -> dict[str, Any]:
        """The space for a sampler (``--search optuna``): each axis's range as a Tune sampling
        object, and a categorical choice among the values of an axis without one."""
        from ray import tune
        choices = {k: tune.choice(list(v)) for k, v in self.grid.items() if k not in self.ranges}
        return {**self.fixed, **choices, **{k: r.tune_domain() for k, r in self.ranges.items()}}

    def to_dict(self) -> dict:
        return {"sweep": self.spec.name, "profile": self.profile, "smoke": self.smoke,
                "data": self.data.to_dict(), "fixed": self.fixed, "grid": self.grid,
                "ranges": {k: r.to_dict() for k, r in self.ranges.items()},
                "asha": dataclasses.asdict(self.asha), "resources": dataclasses.asdict(self.resources),
                "metric": self.spec.metric, "mode": self.spec.mode, "overrides": list(self.overrides),
                "search": self.search}


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
            path: Path | None = None, origins: tuple[str, ...] = ()) -> ResolvedSweep:
    """The sweep's search space for ``profile`` (``cpu`` or ``full``), smoke-sized if asked,
    with ``key=value`` overrides applied and every trial config validated. ``origins`` says
    where each override came from, by position, for error messages (``--set`` where absent;
    ``--set-file FILE:`` for a set file's items)."""
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
    sources: dict[str, str] = {}
    for index, item in enumerate(overrides):
        origin = origins[index] if index < len(origins) else "--set"
        key, value = parse_override(item, origin=origin)
        _apply_override(key, value, data, fixed, grid, trial_keys, origin=origin)
        sources[key] = f"{origin} {item}"
    resources = spec.resources["cpu" if (profile == "cpu" or smoke) else "full"]
    values, ranges = split_axes(grid, path, sources)
    resolved = ResolvedSweep(spec=spec, profile=profile, smoke=smoke, data=data_settings(data, path, sources),
                             fixed=fixed, grid=values, asha=AshaSettings(**asha),
                             resources=resources, overrides=tuple(overrides), ranges=ranges)
    validate_configs(resolved, config_class, path, sources)
    return resolved


def split_axes(grid: Mapping[str, Any], path: Path,
               sources: Mapping[str, str] | None = None) -> tuple[dict[str, list], dict[str, Range]]:
    """The grid axes as (values per axis, range per axis): a list is values only, a mapping a
    range with optional values (see the module docstring). Empty lists are errors, since they
    would make a sweep of no trials. An error names the ``--set`` item (``sources``: key → item)
    or else the file the axis came from."""
    values: dict[str, list] = {}
    ranges: dict[str, Range] = {}
    for key, axis in grid.items():
        source = (sources or {}).get(key, str(path))
        if isinstance(axis, Mapping):
            unknown = sorted(set(axis) - set(AXIS_KEYS))
            if unknown:
                raise SearchSpaceError(f"{source}: grid.{key} has unknown key(s) {unknown}; valid: "
                                       f"{', '.join(AXIS_KEYS)}; write {RANGE_SYNTAX}")
            ranges[key] = Range.from_mapping(key, axis, source)
            if "values" in axis:
                values[key] = _axis_values(key, axis["values"], source, ranges[key])
        else:
            values[key] = _axis_values(key, axis, source, None)
    return values, ranges


def _axis_values(key: str, axis: Any, source: str, drawn: Range | None) -> list:
    """A non-empty list, each value inside the axis's range when it has one."""
    if not isinstance(axis, list) or not axis:
        raise SearchSpaceError(f"{source}: grid.{key} must be a non-empty list of values, got {axis!r}; "
                               f"put a single value under fixed: instead")
    outside = [v for v in axis if drawn is not None and not drawn.contains(v)]
    if outside:
        raise SearchSpaceError(f"{source}: grid.{key} lists value(s) {outside!r} outside its range "
                               f"{drawn.to_dict()!r}; widen the range or drop the value(s)")
    return list(axis)


def data_settings(data: Mapping[str, Any], path: Path, sources: Mapping[str, str]) -> DataSettings:
    """The validated data settings; an error names the ``--set`` item or the file the bad value came from."""
    try:
        return DataSettings.from_mapping(data)
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


def parse_override(item: str, *, origin: str = "--set") -> tuple[str, Any]:
    """``key=value`` with the value read as YAML (``lr=[1e-3,3e-4]`` is a list,
    ``lr={loguniform: [1e-5, 1e-2]}`` a range); errors name ``origin``, where it came from."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise SearchSpaceError(f"{origin} {item!r}: expected key=value, for example --set lr=[1e-3,3e-4]")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise SearchSpaceError(f"{origin} {item!r}: cannot read the value ({exc})") from exc
    if isinstance(value, str):
        value = yaml_number(value)
    if isinstance(value, list):
        value = _list_numbers(value)
    if isinstance(value, dict):
        value = {k: _list_numbers(v) if isinstance(v, list) else v for k, v in value.items()}
    return key.strip(), value


def _list_numbers(values: list) -> list:
    """The list with numbers written as ``1e-3`` read as floats (see ``ranges.yaml_number``)."""
    return [yaml_number(v) if isinstance(v, str) else v for v in values]


def _apply_override(key: str, value: Any, data: dict, fixed: dict, grid: dict, trial_keys: list[str], *,
                    origin: str = "--set") -> None:
    """A data setting of any dataset goes to the data section (whose validation refuses one the
    sweep's dataset does not have, listing those it has); a trial key fixes or replaces an axis.
    Errors name ``origin``, where the override came from."""
    if any_data_key(key):
        data[key] = value
    elif key in trial_keys:
        if isinstance(value, (list, Mapping)):
            if not value:
                raise SearchSpaceError(f"{origin} {key}={value}: an axis needs at least one value")
            grid[key] = value
            fixed.pop(key, None)
        else:
            fixed[key] = value
            grid.pop(key, None)
    else:
        valid = sorted(set(trial_keys) | set(data_keys(data["dataset"])))
        raise SearchSpaceError(f"{origin} {key}: unknown key; valid keys: {', '.join(valid)}")


def validate_configs(resolved: ResolvedSweep, config_class: type, path: Path,
                     sources: Mapping[str, str]) -> None:
    """Build every trial's config dataclass now, so bad values fail before Ray starts; an error
    names the ``--set`` item or the file the bad value came from (``sources``: key → item)."""
    axis = variant_axis(resolved)
    if axis in resolved.ranges:
        raise SearchSpaceError(f"{resolved.ranges[axis].source}: grid.{axis} selects the data variant, "
                               f"which is prepared per listed value before the sweep; "
                               f"list its values (grid.{axis}: [...]) instead of a range")
    for value in resolved.grid.get(axis, [resolved.fixed[axis]] if axis in resolved.fixed else []):
        try:
            resolved.data.variant_options(value)
        except ConfigError as exc:
            raise SearchSpaceError(f"{source_of(exc, path, sources)}: {exc}") from exc
    for config in [*resolved.configs(), *range_endpoint_configs(resolved)]:
        try:
            from_config(config_class, {k: v for k, v in config.items() if k != axis})
        except ConfigError as exc:
            raise SearchSpaceError(f"{source_of(exc, path, sources)}: {exc}") from exc


def range_endpoint_configs(resolved: ResolvedSweep) -> Iterator[dict[str, Any]]:
    """The first grid point with one ranged axis at each of its endpoints (or categories),
    so a range a trial config cannot take (a float range for a whole-number key, a negative
    rate) fails before Ray starts."""
    first = next(resolved.configs())
    for key, drawn in resolved.ranges.items():
        for value in drawn.endpoints():
            yield {**first, key: value}


def grid_size_of(spec: SweepSpec) -> int:
    """Grid points of the sweep's full profile, read from its file without resolving trial configs."""
    path = search_space_path(spec.search_space)
    doc = load_yaml(path)
    fixed = doc.get("fixed", {})
    values, ranges = split_axes({k: v for k, v in doc.get("grid", {}).items() if k not in fixed}, path)
    return ResolvedSweep(spec=spec, profile="full", smoke=False, data=DataSettings.from_mapping(doc["data"]),
                         fixed=fixed, grid=values, asha=spec.asha, resources=spec.resources["full"],
                         ranges=ranges).grid_size


def from_saved(spec: SweepSpec, saved: Mapping[str, Any]) -> ResolvedSweep:
    """Rebuild the exact resolved sweep an experiment ran with (for ``--resume`` and analysis)."""
    return ResolvedSweep(spec=spec, profile=saved["profile"], smoke=saved["smoke"],
                         data=saved_data_settings(saved["data"]), fixed=dict(saved["fixed"]),
                         grid={k: list(v) for k, v in saved["grid"].items()},
                         asha=AshaSettings(**saved["asha"]), resources=Resources(**saved["resources"]),
                         overrides=tuple(saved.get("overrides", ())),
                         ranges={k: Range.from_mapping(k, r, "sweep.json") for k, r in saved.get("ranges", {}).items()},
                         search=saved.get("search", "grid"))
