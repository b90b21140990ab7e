"""The data audit: what was read, what was kept, and every item dropped with its reason.

Every sweep starts with an audit of the whole dataset so a researcher sees, before any GPU
time is spent, exactly which images and annotations went into the experiment.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from dataclasses import dataclass, field

from trainables.datasets.download import format_manifest_check, manifest_differences
from trainables.datasets.leakage import LINE_WIDTH, format_leakage, without_timing

MASKS_LISTED = 20


@dataclass(frozen=True)
class DroppedItem:
    """One image or annotation left out of the dataset, and why."""

    split: str
    item: str
    reason: str


@dataclass
class DataAudit:
    """Counts per split and class, every dropped item, the leakage check across splits, the
    comparison with the pinned manifest (for a dataset that has one), the masks of a
    segmentation dataset (see ``format_masks``), and notes on how the data was read (which
    folder became which class, say).

    ``annotations_read`` counts every annotation found (kept or not); ``kept`` counts the
    samples that reached the dataset, per split and class.
    """

    dataset: str
    root: str
    class_names: tuple[str, ...]
    images_listed: Counter = field(default_factory=Counter)
    images_read: Counter = field(default_factory=Counter)
    annotations_read: Counter = field(default_factory=Counter)
    kept: dict[str, Counter] = field(default_factory=dict)
    dropped: list[DroppedItem] = field(default_factory=list)
    leakage: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    masks: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def drop(self, split: str, item: str, reason: str) -> None:
        self.dropped.append(DroppedItem(split=split, item=item, reason=reason))

    def keep(self, split: str, class_name: str) -> None:
        self.kept.setdefault(split, Counter())[class_name] += 1

    @property
    def splits(self) -> list[str]:
        return list(self.images_listed)

    def total_read(self) -> int:
        return sum(self.annotations_read.values())

    def total_kept(self) -> int:
        return sum(sum(c.values()) for c in self.kept.values())

    def strict_problems(self) -> list[str]:
        """What a strict run refuses: one line per dropped item, per file that differs from
        the pinned manifest and per split that lacks a class other splits hold; empty when the
        data is clean. A class no split holds is a warning only (``class_warnings``): the
        dataset is what it is, and the audit table shows it."""
        held = {name for counts in self.kept.values() for name, count in counts.items() if count > 0}
        return ([f"dropped [{d.split}] {d.item}: {d.reason}" for d in self.dropped]
                + [f"manifest: {line}" for line in manifest_differences(self.manifest)]
                + [f"classes: {self.class_warning(split, [n for n in names if n in held])}"
                   for split, names in self.missing_classes().items() if set(names) & held])

    def missing_classes(self) -> dict[str, list[str]]:
        """Per split that holds samples, the classes it holds none of (in class order). Only
        where the kept counts are per class (not a segmentation dataset's per folder)."""
        if self.kept_columns() != list(self.class_names):
            return {}
        missing = {split: [name for name in self.class_names if counts[name] <= 0]
                   for split, counts in self.kept.items() if sum(counts.values()) > 0}
        return {split: names for split, names in missing.items() if names}

    def class_warnings(self) -> list[str]:
        """One line per split without a class: on that split the metrics that need the class
        (its recall, a binary sensitivity or specificity, its ROC-AUC or AP) are undefined, so
        the audit says so before any training."""
        return [self.class_warning(split, names) for split, names in self.missing_classes().items()]

    def class_warning(self, split: str, names: list[str]) -> str:
        """Why ``split`` lacking the classes ``names`` matters, its kept counts, and the fix."""
        kept = ", ".join(f"{name} {self.kept[split][name]:,}" for name in self.class_names)
        those = "those classes" if len(names) > 1 else "that class"
        return (f"the {split} split holds no {', '.join(names)} (kept: {kept}): metrics that need {those} "
                f"(recall, sensitivity or specificity, ROC-AUC, AP) are undefined on {split}; add "
                f"{', '.join(names)} samples to the {split} split, or leave out --strict-data to go on with the "
                f"report showing those metrics as undefined")

    def to_dict(self) -> dict:
        """The audit's record (``data_audit.json``, the cache): the same for the same data and
        settings, so without the seconds the leakage work took (the text shows those)."""
        return {
            "dataset": self.dataset,
            "root": self.root,
            "class_names": list(self.class_names),
            "images_listed": dict(self.images_listed),
            "images_read": dict(self.images_read),
            "annotations_read": dict(self.annotations_read),
            "kept": {split: dict(c) for split, c in self.kept.items()},
            "totals": {"annotations_read": self.total_read(), "kept": self.total_kept(),
                       "dropped": len(self.dropped)},
            "dropped": [vars(d) for d in self.dropped],
            "leakage": without_timing(self.leakage),
            "manifest": self.manifest,
            "masks": self.masks,
            "notes": list(self.notes),
            "warnings": self.class_warnings(),
        }

    def format(self) -> str:
        """A plain-text table a person reads in the terminal or in ``data_audit.txt``."""
        names = self.kept_columns()
        header = ["split", "images listed", "images read", "boxes read", *names, "kept"]
        rows = []
        for split in self.splits:
            kept = self.kept.get(split, Counter())
            rows.append([split, self.images_listed[split], self.images_read[split],
                         self.annotations_read[split], *(kept[n] for n in names),
                         sum(kept.values())])
        totals = ["total", sum(self.images_listed.values()), sum(self.images_read.values()),
                  self.total_read(),
                  *(sum(self.kept.get(s, Counter())[n] for s in self.splits) for n in names),
                  self.total_kept()]
        table = _format_table(header, [*rows, totals])
        lines = [f"Data audit: {self.dataset} at {self.root}", *self.notes, table, *format_masks(self.masks),
                 *(wrapped for line in self.class_warnings()
                   for wrapped in textwrap.wrap(f"Warning: {line}", width=LINE_WIDTH, subsequent_indent="  "))]
        if self.dropped:
            lines.append(f"Dropped {len(self.dropped)} item(s):")
            lines += [f"  [{d.split}] {d.item}: {d.reason}" for d in self.dropped]
        else:
            lines.append("Dropped 0 items.")
        return "\n".join(lines + format_manifest_check(self.manifest) + format_leakage(self.leakage))

    def kept_columns(self) -> list[str]:
        """What kept samples are counted by: the classes, or (for a dataset that keeps samples
        per folder, like segmentation pairs per class folder) those folders."""
        seen = {name for counts in self.kept.values() for name in counts}
        if not seen or seen <= set(self.class_names):
            return list(self.class_names)
        return sorted(seen)

    @classmethod
    def from_dict(cls, doc: dict) -> DataAudit:
        """Rebuild an audit saved with ``to_dict`` (a cached run shows the same audit)."""
        return cls(dataset=doc["dataset"], root=doc["root"], class_names=tuple(doc["class_names"]),
                   images_listed=Counter(doc["images_listed"]),
                   images_read=Counter(doc["images_read"]),
                   annotations_read=Counter(doc["annotations_read"]),
                   kept={split: Counter(c) for split, c in doc["kept"].items()},
                   dropped=[DroppedItem(**d) for d in doc["dropped"]], leakage=doc.get("leakage", {}),
                   manifest=doc.get("manifest", {}), masks=doc.get("masks", {}), notes=list(doc.get("notes", [])))


def format_masks(masks: dict) -> list[str]:
    """Lines for a segmentation audit's masks section (empty without one): the rule that makes
    a mask (wrapped at ``LINE_WIDTH``), the spread of foreground fractions, and the near-empty
    and mismatched pairs by name (at most ``MASKS_LISTED`` of each)."""
    if not masks:
        return []
    lines = textwrap.wrap(f"Masks: {masks['rule']}", width=LINE_WIDTH, subsequent_indent="  ")
    quantiles = masks.get("fraction_quantiles", {})
    if quantiles.get("p50") is not None:
        lines.append(f"Foreground fraction per mask: median {quantiles['p50']:.2%} "
                     f"(5th pct {quantiles['p5']:.2%}, 95th {quantiles['p95']:.2%})")
    near_empty, outcome = masks.get("near_empty", []), "dropped" if masks["policy"] == "drop" else "kept"
    lines.append(f"{len(near_empty)} near-empty mask(s) (foreground below {masks['empty_below'] * 100:g}%), "
                 f"empty_masks={masks['policy']}: {outcome}" + (":" if near_empty else "."))
    lines += _listed([f"{item['source']} {item['fraction']:.2%}" for item in near_empty])
    mismatched = masks.get("mismatched", [])
    if mismatched:
        lines.append(f"{len(mismatched)} mismatched pair(s):")
        lines += _listed([f"{item['source']}: {item['reason']}" for item in mismatched])
    return lines


def _listed(items: list[str]) -> list[str]:
    """The first ``MASKS_LISTED`` items indented, and how many more the JSON audit holds."""
    more = [f"  … {len(items) - MASKS_LISTED} more in data_audit.json"] if len(items) > MASKS_LISTED else []
    return [f"  {item}" for item in items[:MASKS_LISTED]] + more


def _format_table(header: list, rows: list[list]) -> str:
    cells = [[str(c) for c in header]] + [[f"{c:,}" if isinstance(c, int) else str(c) for c in r]
                                          for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))

    return "\n".join([line(cells[0]), line(["-" * w for w in widths])] + [line(r) for r in cells[1:]])
