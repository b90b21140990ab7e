"""What is done about confirmed duplicates across splits: the ``leakage`` data setting.

* ``warn`` only reports them in the audit (the default where the dataset fixes its splits);
* ``group`` builds groups of duplicates before splitting, so each group lands in one split
  (as scikit-learn's group splitters do; the default where medsweep makes the split itself);
* ``drop`` keeps each group's members in its earliest split (train, then val, then test) and
  removes the others from the data;
* ``fail`` stops with an error listing the duplicates.

The audit's leakage section says which policy ran and what it moved or dropped; under
``group`` its ``groups`` list each group's members, split, and the links that joined it (an
exact copy: the same SHA-256; a near pair: its hash distance and aligned similarity).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trainables.datasets.audit import DataAudit
from trainables.datasets.base import DatasetError, SplitArrays
from trainables.datasets.images import CorruptImageError, decode_rgb
from trainables.datasets.leakage import (
    MIN_SIMILARITY,
    NEAR_DISTANCE,
    NO_SPLIT,
    SPLIT_ORDER,
    ImagePrint,
    confirm_pairs,
    decode_print,
    image_print,
    near_duplicate_pairs,
)

LEAKAGE_POLICIES = ("warn", "group", "drop", "fail")
UNASSIGNED = "unassigned"   # the split of an image print taken before splits are assigned


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


@dataclass(frozen=True)
class Grouping:
    """The groups of duplicates found before splitting (``duplicate_index_groups``), handed by
    a reader to ``split_keeping_groups`` (``indices``, into its listing) and then to
    ``apply_after_split`` for the audit: each group's sources (``members``, sorted), the links
    that joined it (keyed by its members), each grouped image's file, and the seconds the
    comparison took. ``Grouping()`` is no grouping (a policy other than ``group``)."""

    indices: list[list[int]] = field(default_factory=list)
    members: list[list[str]] = field(default_factory=list)
    links: dict[tuple[str, ...], list[dict]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def unassigned_prints(images: Iterable[tuple[str, Path]]) -> list[ImagePrint]:
    """The prints (split ``UNASSIGNED``) of the ``(source, path)`` image files that decode,
    taken before any split exists so that duplicates can be grouped. A file that does not
    decode gets none: its reader drops it later, with the reason."""
    prints = []
    for source, path in images:
        try:
            prints.append(image_print(UNASSIGNED, source, path, decode_rgb(path)))
        except CorruptImageError:
            continue
    return prints


def duplicate_index_groups(sources: list[str], prints: list[ImagePrint]) -> Grouping:
    """The groups (of two or more) of images in the listing ``sources`` that are exact copies
    or confirmed near-duplicates of each other, found among its ``UNASSIGNED`` ``prints``
    before it is split, with the links that joined them (for the audit)."""
    started = time.perf_counter()
    links = duplicate_links(prints)
    groups = [group for group in duplicate_groups([link["a"], link["b"]] for link in links) if len(group) > 1]
    files = {printed.source: printed.path for printed in prints if printed.path is not None}
    index_of = {source: index for index, source in enumerate(sources)}
    return Grouping(indices=[[index_of[source] for source in group] for group in groups], members=groups,
                    links=_links_by_group(groups, links),
                    files={source: files[source] for group in groups for source in group if source in files},
                    seconds=time.perf_counter() - started)


def _links_by_group(groups: list[list[str]], links: list[dict]) -> dict[tuple[str, ...], list[dict]]:
    """The ``links`` that joined each of the (sorted) ``groups``, keyed by the group."""
    key_of = {source: tuple(group) for group in groups for source in group}
    joined: dict[tuple[str, ...], list[dict]] = {key: [] for key in key_of.values()}
    for link in links:
        joined[key_of[link["a"]]].append(link)
    return joined


def duplicate_links(prints: list[ImagePrint]) -> list[dict]:
    """Every link between two of the ``prints`` by source: each exact copy of a group's first
    image (same SHA-256: 0 bits, similarity not measured) and each near pair confirmed by its
    aligned similarity (the check's criterion), with its hash distance and similarity."""
    by_content: dict[str, list[str]] = {}
    for printed in prints:
        by_content.setdefault(printed.sha256, []).append(printed.source)
    links = [{"a": first, "b": other, "kind": "exact", "bits": 0, "similarity": None}
             for first, *others in by_content.values() for other in others]
    candidates = near_duplicate_pairs(prints, NEAR_DISTANCE, across_splits=False)
    source_of = {printed.name: printed.source for printed in prints}
    links += [{"a": source_of[pair["a"]], "b": source_of[pair["b"]], "kind": "near", "bits": pair["bits"],
               "similarity": pair["similarity"]}
              for pair in confirm_pairs(prints, candidates, min_similarity=MIN_SIMILARITY, pixels=decode_print)]
    return links


def split_keeping_groups(count: int, groups: list[list[int]],
                         split_representatives: Callable[[np.ndarray], list[np.ndarray]]) -> list[np.ndarray]:
    """Indices (among ``count`` listed items) of each split, every group of duplicates (indices)
    landing in one split: ``split_representatives`` is given the items that stand for
    themselves or for their group (its lowest index) and returns each split's positions among
    them; every other member follows its representative. Without groups this is exactly
    ``split_representatives(np.arange(count))``, so the seeded split is unchanged."""
    followers = {min(group): sorted(set(group) - {min(group)}) for group in groups}
    following = {member for members in followers.values() for member in members}
    representatives = np.asarray([i for i in range(count) if i not in following], dtype=np.int64)
    return [np.asarray([member for rep in representatives[part] for member in (rep, *followers.get(rep, ()))],
                       dtype=np.int64) for part in split_representatives(representatives)]


def apply_after_split(policy: str, splits: dict, audit: DataAudit, grouping: Grouping, *,
                      columns_of: Callable[[str, object], Iterable[str]]) -> dict:
    """The splits after the leakage ``policy`` (resolved: see ``resolve_policy``), and the policy
    recorded in the audit: ``fail`` raises, ``drop`` removes the later-split duplicates (see
    ``drop_leaked``), ``warn`` leaves them, and ``group``, which acted through the split
    assignment already, lists the groups of ``grouping`` it kept together, each with its split
    and the links that joined it, and the seconds the grouping took."""
    if policy == "fail":
        fail_on_leakage(audit.leakage, dataset=audit.dataset)
    if policy == "drop":
        return drop_leaked(splits, audit, columns_of=columns_of)
    where = {source: split for split, arrays in splits.items() for source in arrays.sources}
    kept = [group_record(group, where, grouping) for group in grouping.members]
    record_policy(audit, policy, [f"kept together in {group['split']}: {', '.join(group['members'])}"
                                  for group in kept])
    if policy == "group":
        audit.leakage = {**audit.leakage, "groups": kept, "grouping_seconds": round(grouping.seconds, 2)}
    return splits


def group_record(group: list[str], where: dict[str, str], grouping: Grouping) -> dict:
    """One group kept together, for the audit: its members, the split they are in (by ``where``,
    split by source), the links that joined them and each member's file."""
    return {"members": list(group),
            "split": next((where[s] for s in group if s in where), NO_SPLIT),
            "links": grouping.links.get(tuple(sorted(group)), []),
            "files": {source: grouping.files[source] for source in group if source in grouping.files}}


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


def drop_leaked(splits: dict, audit: DataAudit, *, columns_of: Callable[[str, object], Iterable[str]],
                name_of: Callable[[str, str], str] = lambda split, source: f"{split}/{source}") -> dict:
    """``splits`` (each with ``sources``, ``labels`` and ``take``) without the later-split
    members of each duplicate group of the audit's leakage check (``name_of`` turns a split and
    a sample's source into the check's name for it). The audit's kept counts lose each removed
    sample's ``columns_of(source, label)`` (one per counted instance: a detection image counts
    each of its objects), and its leakage section lists what was dropped."""
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
            for column in columns_of(arrays.sources[row], arrays.labels[row]):
                audit.kept[split][column] -= 1
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
        return drop_leaked(splits, audit, columns_of=lambda source, label: [column_of(source, label)],
                           name_of=name_of)
    record_policy(audit, resolved, [])
    return splits
