"""What is done about confirmed duplicates across splits: the ``leakage`` data setting.

* ``warn`` only reports them in the audit (the default where the dataset fixes its splits);
* ``group`` builds groups of duplicates before splitting, so each group lands in one split
  (as scikit-learn's group splitters do; the default where medsweep makes the split itself);
* ``drop`` keeps each group's members in its earliest split (train, then val, then test) and
  removes the others from the data;
* ``fail`` stops with an error listing the duplicates.

The audit's leakage section says which policy ran and what it moved or dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from trainables.datasets.audit import DataAudit
from trainables.datasets.base import DatasetError, SplitArrays

LEAKAGE_POLICIES = ("warn", "group", "drop", "fail")
SPLIT_ORDER = ("train", "val", "test")


def resolve_policy(policy: str | None, *, dataset: str, splits_made_here: bool) -> str:
    """The policy to run: ``policy``, or when None the dataset's default (``group`` where
    medsweep makes the split, ``warn`` where the dataset fixes it). ``group`` on fixed splits,
    or an unknown name, is an error naming the policies allowed."""
    allowed = LEAKAGE_POLICIES if splits_made_here else tuple(p for p in LEAKAGE_POLICIES if p != "group")
    if policy is None:
        return "group" if splits_made_here else "warn"
    if policy not in allowed:
        why = (" (its splits are fixed by the dataset, so duplicates cannot be kept in one split)"
               if policy == "group" and not splits_made_here else "")
        raise DatasetError(f"leakage policy {policy!r} does not apply to dataset {dataset}{why}; "
                           f"allowed: {', '.join(allowed)}")
    return policy


def duplicate_groups(links: Iterable[Iterable[str]]) -> list[list[str]]:
    """The connected groups (each sorted, listed in order) of names joined by ``links``: exact
    duplicate groups and near-duplicate pairs, so a chain a ~ b ~ c is one group."""
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        parent.setdefault(name, name)
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for link in links:
        first, *others = link
        for other in others:
            parent[root(other)] = root(first)
    groups: dict[str, list[str]] = {}
    for name in parent:
        groups.setdefault(root(name), []).append(name)
    return sorted(sorted(group) for group in groups.values())


def leakage_links(leakage: dict) -> list[list[str]]:
    """The audit's exact groups and confirmed near pairs as lists of ``split/source`` names."""
    return [*leakage.get("exact", []), *([pair["a"], pair["b"]] for pair in leakage.get("near", []))]


def describe_pairs(leakage: dict) -> list[str]:
    """One phrase per exact group and confirmed near pair, with the pair's similarity."""
    return ([" = ".join(group) for group in leakage.get("exact", [])]
            + [f"{pair['a']} ~ {pair['b']} (similarity {pair['similarity']})" for pair in leakage.get("near", [])])


def fail_on_leakage(leakage: dict, *, dataset: str) -> None:
    """Raise a DatasetError listing every duplicate across splits, if there is any."""
    found = describe_pairs(leakage)
    if found:
        raise DatasetError(f"dataset {dataset}: {len(found)} duplicate(s) across splits (leakage policy fail): "
                           f"{'; '.join(found)}. Remove the copies from the data, or set the data setting "
                           f"leakage to warn or drop")


def drop_leaked(splits: dict[str, SplitArrays], audit: DataAudit, *, column_of: Callable[[str, object], str],
                name_of: Callable[[str, str], str] = lambda split, source: f"{split}/{source}",
                ) -> dict[str, SplitArrays]:
    """``splits`` without the later-split members of each duplicate group of the audit's
    leakage check (``name_of`` turns a split and a sample's source into the check's name for
    it). The audit's kept counts lose each removed sample (under ``column_of(source, label)``)
    and its leakage section lists what was dropped."""
    dropped: dict[str, str] = {}
    for group in duplicate_groups(leakage_links(audit.leakage)):
        keep_split = min((name.split("/", 1)[0] for name in group), key=SPLIT_ORDER.index)
        kept = [name for name in group if name.split("/", 1)[0] == keep_split]
        dropped.update({name: kept[0] for name in group if name not in kept})
    result = {}
    for split, arrays in splits.items():
        names = [name_of(split, source) for source in arrays.sources]
        removed = np.asarray([name in dropped for name in names], dtype=bool)
        for row in np.flatnonzero(removed):
            audit.kept[split][column_of(arrays.sources[row], arrays.labels[row])] -= 1
        result[split] = arrays.take(np.flatnonzero(~removed))
    record_policy(audit, "drop", [f"dropped {name} (duplicate of {kept})" for name, kept in sorted(dropped.items())])
    return result


def record_policy(audit: DataAudit, policy: str, actions: list[str]) -> None:
    """Write the policy that ran and what it did into the audit's leakage section."""
    audit.leakage = {**audit.leakage, "policy": policy, "actions": actions}


def apply_to_fixed_splits(policy: str | None, splits: dict[str, SplitArrays], audit: DataAudit, *,
                          column_of: Callable[[str, object], str],
                          name_of: Callable[[str, str], str] = lambda split, source: f"{split}/{source}",
                          ) -> dict[str, SplitArrays]:
    """Run the leakage policy on a dataset whose splits are its own (``group`` is refused):
    the splits as they stand (``warn``), without the later-split duplicates (``drop``), or an
    error (``fail``)."""
    resolved = resolve_policy(policy, dataset=audit.dataset, splits_made_here=False)
    if resolved == "fail":
        fail_on_leakage(audit.leakage, dataset=audit.dataset)
    elif resolved == "drop":
        return drop_leaked(splits, audit, column_of=column_of, name_of=name_of)
    record_policy(audit, resolved, [])
    return splits
