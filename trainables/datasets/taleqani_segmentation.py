"""Taleqani ALL binary cell/background segmentation (study 6).

Original/Segmented pairs are matched by class folder and file stem; the mask of a pair is the
pixels of its Segmented image that differ from that image's background, cleaned of specks
(``cell_mask``). A pair whose mask is near-empty (the real copy's Segmented/Pro images mostly
are) is dropped or kept by the data setting ``empty_masks``, and listed either way. Like the study, the
pairs are shuffled globally with one seed and split 70/15/15, so the class folders only matter
for the audit; under the ``leakage`` policy ``group`` (the default) the pairs whose Original
images are duplicates go into one split together, each mask with its image. Decoded, resized
pairs are cached by the data's checksum and the reading parameters. The leakage check compares
the Original images across splits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from trainables.config import require_choice
from trainables.datasets import taleqani_common as common
from trainables.datasets.audit import DataAudit
from trainables.datasets.base import ClassificationData, SplitArrays
from trainables.datasets.cache import file_digests, fingerprint_of_digests, read_through_cache
from trainables.datasets.download import cache_dir
from trainables.datasets.images import CorruptImageError, decode_rgb, resize_square
from trainables.datasets.leakage import ImagePrint, check_leakage, image_print
from trainables.datasets.leakage_policy import (
    Grouping,
    apply_after_split,
    duplicate_index_groups,
    resolve_policy,
    split_keeping_groups,
    unassigned_prints,
)
from trainables.datasets.options import LeakageOptions

DATASET = "taleqani_segmentation"
CLASS_NAMES = ("background", "cell")
MASK_THRESHOLD = 30
# Specks: connected cell pixels covering less than this fraction of the image (64 px at 224 x 224,
# a disc about 9 px across, smaller than any blast's nucleus) are background. Measured on the
# real copy: 88% of the threshold's components are under 16 px and hold 8% of its cell pixels,
# JPEG ringing around red cells; a blast is 300-900 px.
MIN_COMPONENT_FRACTION = 64 / 224**2
# A mask with less cell than this (250 px at 224 x 224, less than one small blast) is near-empty.
EMPTY_BELOW = 0.005
EMPTY_MASK_POLICIES = ("drop", "keep")
MASK_RULE = (f"a pixel is cell when an RGB channel differs by more than {MASK_THRESHOLD} from the Segmented image's "
             f"background (the median of its border pixels), after a 3x3 opening and without connected specks "
             f"under {MIN_COMPONENT_FRACTION:.3%} of the image")
UNPAIRED = "unpaired"
READER_VERSION = 7
MASK_EXAMPLES = 8


@dataclass(frozen=True)
class TaleqaniSegmentationOptions(LeakageOptions):
    """``empty_masks``: ``drop`` (the default) leaves out pairs whose mask is near-empty (below
    ``EMPTY_BELOW`` cell), ``keep`` trains on them as all-background images; the audit lists
    them by name either way."""

    empty_masks: str = "drop"

    def __post_init__(self) -> None:
        super().__post_init__()
        require_choice("empty_masks", self.empty_masks, EMPTY_MASK_POLICIES)


@dataclass(frozen=True)
class Pair:
    """An Original image and its Segmented copy, identified by ``class_name/stem``."""

    class_name: str
    stem: str
    original: Path
    segmented: Path

    @property
    def source(self) -> str:
        return f"{self.class_name}/{self.stem}"


def segmentation_mask(segmented: np.ndarray, *, threshold: int = MASK_THRESHOLD) -> np.ndarray:
    """The cell pixels of a Segmented image (uint8 HxWx3) as a boolean HxW array.

    Rule: the background colour is the per-channel median of the image's border pixels (its
    outermost rows and columns); a pixel is cell when any RGB channel differs from that colour
    by more than ``threshold`` (of 255). So black and white backgrounds both work, JPEG noise
    up to ``threshold`` stays background, and cells touching part of the border do not shift
    the background colour.
    """
    if segmented.ndim != 3 or segmented.shape[-1] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {segmented.shape}")
    pixels = segmented.astype(np.int16)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = np.median(border, axis=0)
    return (np.abs(pixels - background) > threshold).any(axis=-1)


def cell_mask(segmented: np.ndarray) -> np.ndarray:
    """The mask the study trains on: ``segmentation_mask`` opened by a 3x3 square and without
    connected components under ``MIN_COMPONENT_FRACTION`` of the image (JPEG ringing and the
    outlines of red cells that some Segmented images keep)."""
    raw = segmentation_mask(segmented).astype(np.uint8)
    opened = cv2.morphologyEx(raw, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
    large = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= MIN_COMPONENT_FRACTION * raw.size) + 1
    return np.isin(labels, large)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of a boolean mask to a ``size`` x ``size`` uint8 {0, 1} mask."""
    return cv2.resize(mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)


def read_segmentation_pairs(root: Path, *, image_size: int, seed: int = common.SPLIT_SEED,
                            fractions: tuple[float, ...] = common.SPLIT_FRACTIONS, leakage: str | None = None,
                            empty_masks: str = "drop") -> tuple[dict[str, SplitArrays], DataAudit]:
    """Images and binary masks of every split, and the audit of the whole tree.

    Matched pairs are shuffled once with ``seed`` and split by ``fractions``; under the
    ``leakage`` policy ``group`` (the default; see ``leakage_policy``) each group of pairs whose
    Original images are duplicates is shuffled and split as one. Then each pair is decoded, its
    mask computed at full resolution (``cell_mask``), and both resized to ``image_size`` (image
    bilinear, mask nearest). Unmatched files, undecodable images and pairs whose two images
    differ in size are dropped with a reason; near-empty masks are dropped or kept by
    ``empty_masks``. The audit counts pairs: listed per split, read per split, and kept per
    split and class folder; its leakage section says what the policy did, its masks section
    how masks were made and which are near-empty.
    """
    policy = resolve_policy(leakage, dataset=DATASET, splits_made_here=True)
    require_choice("empty_masks", empty_masks, EMPTY_MASK_POLICIES)
    root = Path(root)
    audit = DataAudit(dataset=DATASET, root=str(root), class_names=CLASS_NAMES)
    pairs = match_pairs(root, audit)
    grouping = duplicate_pair_groups(pairs) if policy == "group" else Grouping()
    parts = split_keeping_groups(len(pairs), grouping.indices, lambda representatives: common.shuffled_split(
        np.arange(len(representatives)), np.random.default_rng(seed), fractions))
    result, prints, fractions_of = {}, [], {}
    for split, indices in zip(common.SPLITS, parts):
        chosen = [pairs[i] for i in indices]
        audit.images_listed[split] = len(chosen)
        result[split] = _read_split(split, chosen, image_size, audit, prints, fractions_of, empty_masks=empty_masks)
    audit.leakage = check_leakage(prints)
    audit.masks = mask_section(pairs, fractions_of, audit, empty_masks=empty_masks)
    result = apply_after_split(policy, result, audit, grouping,
                               columns_of=lambda source, mask: [source.split("/", 1)[0]])
    return result, audit


def mask_section(pairs: list[Pair], fractions_of: dict[str, float], audit: DataAudit, *,
                 empty_masks: str) -> dict[str, Any]:
    """The audit's masks section: the rule, the distribution of cell fractions over every
    decoded pair, each near-empty mask by name, the pairs dropped for their names or sizes, and
    example pairs across the distribution (for ``mask_audit.write_mask_figures``)."""
    fractions = np.asarray(list(fractions_of.values()), dtype=np.float64)
    by_source = {pair.source: pair for pair in pairs}
    ordered = sorted(fractions_of, key=lambda source: (fractions_of[source], source))
    picks = sorted({round(q * (len(ordered) - 1)) for q in np.linspace(0, 1, MASK_EXAMPLES)}) if ordered else []
    counts, edges = np.histogram(fractions, bins=50, range=(0.0, 1.0)) if len(fractions) else ([], [])
    return {
        "rule": MASK_RULE,
        "empty_below": EMPTY_BELOW,
        "policy": empty_masks,
        "fraction_quantiles": {f"p{q}": round(float(np.percentile(fractions, q)), 5) if len(fractions) else None
                               for q in (5, 50, 95)},
        "histogram": {"edges": [round(float(e), 4) for e in edges], "counts": [int(c) for c in counts]},
        "near_empty": [{"source": source, "fraction": round(fractions_of[source], 5)} for source in ordered
                       if fractions_of[source] < EMPTY_BELOW],
        "mismatched": [{"source": d.item, "reason": d.reason} for d in audit.dropped
                       if d.split == UNPAIRED or d.reason.startswith("size mismatch")],
        "examples": [{"source": ordered[i], "fraction": round(fractions_of[ordered[i]], 5),
                      "original": str(by_source[ordered[i]].original),
                      "segmented": str(by_source[ordered[i]].segmented)} for i in picks],
    }


def duplicate_pair_groups(pairs: list[Pair]) -> Grouping:
    """The groups (indices into ``pairs``) of pairs whose Original images are copies or confirmed
    near-duplicates of each other, found before splitting; a pair's mask follows its image."""
    prints = unassigned_prints((pair.source, pair.original) for pair in pairs)
    return duplicate_index_groups([pair.source for pair in pairs], prints)


def match_pairs(root: Path, audit: DataAudit) -> list[Pair]:
    """Pairs matched by (class folder, stem), sorted; unmatched files are audited as dropped."""
    originals = _index_images(root, "Original", audit)
    segmented = _index_images(root, "Segmented", audit)
    for present, other, other_side in ((originals, segmented, "Segmented"),
                                       (segmented, originals, "Original")):
        for class_name, stem in sorted(present.keys() - other.keys()):
            audit.drop(UNPAIRED, present[(class_name, stem)].relative_to(root).as_posix(),
                       f"no matching {other_side}/{class_name}/{stem}.* file")
    return [Pair(class_name, stem, originals[(class_name, stem)], segmented[(class_name, stem)])
            for class_name, stem in sorted(originals.keys() & segmented.keys())]


def _index_images(root: Path, side: str, audit: DataAudit) -> dict[tuple[str, str], Path]:
    """``(class folder, stem) → path`` of one side's images; duplicate stems are dropped."""
    index: dict[tuple[str, str], Path] = {}
    for path in image_files(root / side):
        key = (path.parent.name, path.stem)
        if key in index:
            audit.drop(UNPAIRED, path.relative_to(root).as_posix(),
                       f"same class folder and stem as {index[key].name}")
        else:
            index[key] = path
    return index


def image_files(folder: Path) -> list[Path]:
    """The images inside the class folders of ``folder`` (one level down), sorted."""
    return sorted(p for p in folder.glob("*/*") if common.is_image_file(p))


def _read_split(split: str, pairs: list[Pair], image_size: int, audit: DataAudit, prints: list[ImagePrint],
                fractions_of: dict[str, float], *, empty_masks: str) -> SplitArrays:
    """One split's resized images and masks; each decoded pair's cell fraction goes into
    ``fractions_of`` and, unless its mask is near-empty under ``empty_masks=drop``, the pair
    into the split and its Original's print into ``prints``."""
    images, masks, sources = [], [], []
    for pair in pairs:
        decoded = _read_pair(split, pair, audit)
        if decoded is None:
            continue
        original, mask = decoded
        fractions_of[pair.source] = float(mask.mean())
        if empty_masks == "drop" and fractions_of[pair.source] < EMPTY_BELOW:
            continue
        prints.append(image_print(split, pair.source, pair.original, original))
        images.append(resize_square(original, image_size))
        masks.append(resize_mask(mask, image_size))
        sources.append(pair.source)
        audit.keep(split, pair.class_name)
    return SplitArrays(
        images=np.stack(images) if images else np.zeros((0, image_size, image_size, 3), np.uint8),
        labels=np.stack(masks) if masks else np.zeros((0, image_size, image_size), np.uint8),
        sources=np.asarray(sources, dtype=str))


def _read_pair(split: str, pair: Pair, audit: DataAudit) -> tuple[np.ndarray, np.ndarray] | None:
    """The decoded Original and its full-resolution mask, or None (audited) when unusable."""
    try:
        original = decode_rgb(pair.original)
        segmented = decode_rgb(pair.segmented)
    except CorruptImageError as exc:
        audit.drop(split, pair.source, f"corrupt image: {exc}")
        return None
    audit.images_read[split] += 1
    if original.shape != segmented.shape:
        audit.drop(split, pair.source,
                   f"size mismatch: Original {_size(original)}, Segmented {_size(segmented)}")
        return None
    return original, cell_mask(segmented)


def _size(image: np.ndarray) -> str:
    return f"{image.shape[1]}x{image.shape[0]}"


def prepare_taleqani_segmentation(*, data_dir: str | None, image_size: int, leakage: str | None = None,
                                  empty_masks: str = "drop", use_cache: bool = True,
                                  ) -> tuple[ClassificationData, DataAudit]:
    """Images and masks of every split, and the audit of the whole dataset, whose files are
    compared with the pinned manifest from the digests that key the cache.

    The keywords after ``image_size`` are ``TaleqaniSegmentationOptions``'s fields: ``leakage``
    is the duplicate policy (``group`` by default; see ``leakage_policy``), ``empty_masks``
    what happens to pairs whose mask is near-empty.
    """
    policy = resolve_policy(leakage, dataset=DATASET, splits_made_here=True)
    root = common.locate_taleqani(data_dir, folders=common.SEGMENTATION_FOLDERS)
    params = {"reader": READER_VERSION, "image_size": image_size, "seed": common.SPLIT_SEED,
              "fractions": list(common.SPLIT_FRACTIONS), "threshold": MASK_THRESHOLD,
              "min_component": MIN_COMPONENT_FRACTION, "empty_below": EMPTY_BELOW, "empty_masks": empty_masks,
              "leakage": policy}
    digests = file_digests(_source_files(root))
    key = fingerprint_of_digests(digests, root, params)
    cache_path = cache_dir() / "masks" / f"taleqani-{key[:20]}.npz"
    splits, audit = read_through_cache(
        cache_path, params, lambda: read_segmentation_pairs(root, image_size=image_size, leakage=policy,
                                                            empty_masks=empty_masks),
        use_cache=use_cache)
    audit.manifest = common.taleqani_manifest_check(root, digests, folders=common.SEGMENTATION_FOLDERS)
    data = ClassificationData(name=DATASET, class_names=CLASS_NAMES, splits=splits, fingerprint=key)
    return data, audit


def _source_files(root: Path) -> list[Path]:
    return image_files(root / "Original") + image_files(root / "Segmented")
