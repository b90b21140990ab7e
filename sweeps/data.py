"""The data a sweep's trials see, prepared once in the driver the same way for the sweep and
for the analysis reruns.

Some datasets can be prepared in several ways that a study compares as a grid axis (study 5's
``loading_option``: per-class or global splits). Such a dataset names that axis in its registry
entry; the driver prepares one variant per value the sweep uses, and each trial trains on the
variant its config names. The axis is a sweep key, not a trainable setting: it is taken out of
the config before the trainable sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from sweeps.space import ResolvedSweep
from trainables.datasets import get_dataset_entry
from trainables.datasets.audit import DataAudit
from trainables.datasets.base import ClassificationData

TRAINING_SPLITS = ("train", "val")


@dataclass(frozen=True)
class SweepData:
    """Decoded data per value of the dataset's variant axis (one entry keyed None when the
    dataset has no such axis), each with the audit of its preparation."""

    axis: str | None
    variants: dict[Any, ClassificationData]
    audits: dict[Any, DataAudit]

    @property
    def primary(self) -> ClassificationData:
        return next(iter(self.variants.values()))

    @property
    def audit(self) -> DataAudit:
        return next(iter(self.audits.values()))

    def key_of(self, config: Mapping[str, Any]) -> Any:
        """The variant a trial config trains on."""
        if self.axis is None:
            return None
        value = config.get(self.axis)
        if value not in self.variants:
            raise KeyError(f"{self.axis}={value!r} has no prepared data; prepared: "
                           f"{', '.join(map(str, self.variants))}")
        return value

    def for_config(self, config: Mapping[str, Any]) -> tuple[ClassificationData, dict[str, Any]]:
        """The variant a trial config trains on, and the config without the variant axis."""
        data = self.variants[self.key_of(config)]
        return data, {k: v for k, v in config.items() if k != self.axis}

    def only(self, *splits: str) -> SweepData:
        return replace(self, variants={k: v.only(*splits) for k, v in self.variants.items()})

    def label(self, key: Any) -> str:
        return "" if self.axis is None else f"{self.axis} {key}"

    def audit_text(self) -> str:
        """Every variant's audit, each under its axis value when there are several."""
        return "\n\n".join(f"{self.label(k)}:\n{a.format()}" if self.axis else a.format()
                           for k, a in self.audits.items())

    def audit_json(self) -> dict:
        """The first variant's audit (what the analysis reads), with every variant's under
        ``variants`` when there are several."""
        doc = self.audit.to_dict()
        if self.axis is not None:
            doc["variant_axis"] = self.axis
            doc["variants"] = {str(k): a.to_dict() for k, a in self.audits.items()}
        return doc

    def describe_training_splits(self) -> str:
        return "; ".join(f"{self.label(key)} {name} {len(split)} samples {data.class_counts(name).tolist()}".strip()
                         for key, data in self.variants.items() for name, split in data.splits.items())


def variant_values(resolved: ResolvedSweep, axis: str | None) -> list:
    """The values of ``axis`` the sweep uses (grid values, its fixed value, or [None])."""
    if axis is None:
        return [None]
    if axis in resolved.grid:
        return list(resolved.grid[axis])
    return [resolved.fixed[axis]] if axis in resolved.fixed else [None]


def prepare_sweep_data(resolved: ResolvedSweep, *, data_dir: str | None,
                       splits: tuple[str, ...] = TRAINING_SPLITS) -> SweepData:
    """Decoded data of ``splits`` (a smoke subset when the sweep asks for one) and the audit of
    the whole dataset, per variant. Sweeps take the training splits; only the analysis asks for
    ``test``."""
    entry = get_dataset_entry(resolved.data.dataset)
    values = variant_values(resolved, entry.variant_axis)
    axis = entry.variant_axis if values != [None] else None
    variants, audits = {}, {}
    for value in values:
        options = resolved.data.variant_options(value)
        data, audits[value] = entry.prepare(data_dir=data_dir, image_size=resolved.data.image_size,
                                            **options.keywords())
        if resolved.data.images_per_split:
            data = data.subset_sources(resolved.data.images_per_split, seed=int(resolved.fixed.get("seed", 0)))
        variants[value] = data.only(*splits)
    return SweepData(axis=axis, variants=variants, audits=audits)


def on_variant(function: Callable[..., None]) -> Callable[..., None]:
    """``function`` (a trainable taking ``data`` and ``monitor``) run on the variant of its
    config, with the variant axis taken out; Tune names trials after ``function``."""
    def run_trial(config: dict, *, data: SweepData, monitor) -> None:
        variant, config = data.for_config(config)
        function(config, data=variant, monitor=monitor)
    run_trial.__name__ = run_trial.__qualname__ = function.__name__
    return run_trial
