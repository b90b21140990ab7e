"""The data a sweep's trials see, prepared once in the driver the same way for the sweep and
for the analysis reruns.

Some datasets can be prepared in several ways that a study compares as a grid axis (study 5's
``loading_option``: per-class or global splits). Such a dataset names that axis in its registry
entry; the driver prepares one variant per value the sweep uses, and each trial trains on the
variant its config names. The axis is a sweep key, not a trainable setting: it is taken out of
the config before the trainable sees it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from sweeps.space import FIXED_IMAGE_SIZES, ResolvedSweep
from trainables.datasets import get_dataset_entry
from trainables.datasets.audit import DataAudit
from trainables.datasets.base import ClassificationData, DatasetError

TRAINING_SPLITS = ("train", "val")
# What the audit decodes from the full copy of each dataset (items at image_size², and bytes per
# pixel of one item, masks included), for the decoded-size estimate made before decoding: BCCD's
# 4,886 patches, Taleqani's 3,256 images (with their masks for segmentation), BCCD's 364 images
# for detection. Another dataset (or a copy of unknown size) counts as DEFAULT_DECODED_ITEMS.
DECODED_ITEMS = {"bccd": (4_886, 3), "taleqani": (3_256, 3), "taleqani_segmentation": (3_256, 4),
                 "bccd_detection": (364, 3)}
DEFAULT_DECODED_ITEMS = (1_000, 3)
# The decoded data may take at most this share of the machine's memory without --allow-large-images.
MEMORY_SHARE = 0.5


class DecodedSizeError(DatasetError):
    """The decoded data would not fit in the machine's memory; nothing was decoded."""


class TooFewClassesError(DatasetError):
    """A classification split with fewer than two classes: every prediction would be right."""


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


def machine_memory_bytes() -> int:
    """This machine's physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def estimated_decoded_bytes(resolved: ResolvedSweep) -> int:
    """What decoding the sweep's dataset at its image size takes: items × image_size² × bytes
    per pixel (``DECODED_ITEMS``), once per data variant."""
    items, depth = DECODED_ITEMS.get(resolved.data.dataset, DEFAULT_DECODED_ITEMS)
    variants = len(variant_values(resolved, get_dataset_entry(resolved.data.dataset).variant_axis))
    return items * resolved.data.image_size ** 2 * depth * variants


def check_decoded_size(resolved: ResolvedSweep, *, allowed: bool, memory: int | None = None) -> None:
    """Refuse, before anything is decoded, an image size whose decoded data would take more
    than ``MEMORY_SHARE`` of the machine's ``memory`` (an extra digit, 2240 for 224, asks for
    tens of gigabytes), unless ``allowed`` (``--allow-large-images``)."""
    if allowed or resolved.data.dataset in FIXED_IMAGE_SIZES:
        return
    memory = machine_memory_bytes() if memory is None else memory
    needed = estimated_decoded_bytes(resolved)
    if needed <= MEMORY_SHARE * memory:
        return
    size = resolved.data.image_size
    raise DecodedSizeError(f"image_size={size}: decoding {resolved.data.dataset} at {size}×{size} pixels takes "
                           f"about {needed / 1e9:.1f} GB, more than {MEMORY_SHARE:.0%} of this machine's "
                           f"{memory / 1e9:.1f} GB of memory; lower it (--set image_size=…), or add "
                           f"--allow-large-images if the machine has room")


def check_classes(resolved: ResolvedSweep, data: SweepData) -> None:
    """A classification sweep's train and val splits must each hold samples of at least two
    classes: with one, every prediction is right and the sweep's metric says 1.0."""
    if resolved.spec.trainable != "classification":
        return
    for key, variant in data.variants.items():
        for split in TRAINING_SPLITS:
            counts = variant.class_counts(split)
            present = [name for name, count in zip(variant.class_names, counts) if count > 0]
            if len(present) < 2:
                where = " ".join(filter(None, (variant.name, data.label(key))))
                raise TooFewClassesError(
                    f"{where}: the {split} split holds {len(variant.splits[split])} sample(s) of "
                    f"{len(present)} class(es) ({', '.join(present) or 'none'}; the dataset names "
                    f"{', '.join(variant.class_names)}), and a classifier needs at least two; put images of "
                    f"the other classes into the dataset's class folders, or point --data-dir at the full copy")


def on_variant(function: Callable[..., None]) -> Callable[..., None]:
    """``function`` (a trainable taking ``data`` and ``monitor``) run on the variant of its
    config, with the variant axis taken out; Tune names trials after ``function``."""
    def run_trial(config: dict, *, data: SweepData, monitor) -> None:
        variant, config = data.for_config(config)
        function(config, data=variant, monitor=monitor)
    run_trial.__name__ = run_trial.__qualname__ = function.__name__
    return run_trial
