"""Taleqani ALL binary cell/background segmentation (study 6).

Original/Segmented pairs are matched by class folder and file stem; the mask of a pair is the
pixels of its Segmented image that differ from that image's background. Like the study, the
pairs are shuffled globally with one seed and split 70/15/15, so the class folders only matter
for the audit; under the ``leakage`` policy ``group`` (the default) the pairs whose Original
images are duplicates go into one split together, each mask with its image. Decoded, resized
pairs are cached by the data's checksum and the reading parameters. The leakage check compares
the Original images across splits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from trainables.datasets import taleqani_common as common
from trainables.datasets.audit import DataAudit
from trainables.datasets.base import ClassificationData, SplitArrays
from trainables.datasets.cache import fingerprint, read_through_cache
from trainables.datasets.download import cache_dir
from trainables.datasets.images import CorruptImageError, decode_rgb, resize_square
from trainables.datasets.leakage import ImagePrint, check_leakage, image_print
from trainables.datasets.leakage_policy import (
    apply_after_split,
    duplicate_index_groups,
    resolve_policy,
    split_keeping_groups,
    unassigned_prints,
)

DATASET = "taleqani_segmentation"
CLASS_NAMES = ("background", "cell")
MASK_THRESHOLD = 30
UNPAIRED = "unpaired"
READER_VERSION = 5


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


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of a boolean mask to a ``size`` x ``size`` uint8 {0, 1} mask."""
    return cv2.resize(mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)


def read_segmentation_pairs(root: Path, *, image_size: int, seed: int = common.SPLIT_SEED,
                            fractions: tuple[float, ...] = common.SPLIT_FRACTIONS, leakage: str | None = None,
                            ) -> tuple[dict[str, SplitArrays], DataAudit]:
    """Images and binary masks of every split, and the audit of the whole tree.

    Matched pairs are shuffled once with ``seed`` and split by ``fractions``; under the
    ``leakage`` policy ``group`` (the default; see ``leakage_policy``) each group of pairs whose
    Original images are duplicates is shuffled and split as one. Then each pair is decoded, its
    mask computed at full resolution, and both resized to ``image_size`` (image bilinear, mask
    nearest). Unmatched files, undecodable images and pairs whose two images differ in size are
    dropped with a reason. The audit counts pairs: listed per split, read per split, and kept
    per split and class folder; its leakage section says what the policy did.
    """
    policy = resolve_policy(leakage, dataset=DATASET, splits_made_here=True)
    root = Path(root)
    audit = DataAudit(dataset=DATASET, root=str(root), class_names=CLASS_NAMES)
    pairs = match_pairs(root, audit)
    groups = duplicate_pair_groups(pairs) if policy == "group" else []
    parts = split_keeping_groups(len(pairs), groups, lambda representatives: common.shuffled_split(
        np.arange(len(representatives)), np.random.default_rng(seed), fractions))
    result, prints = {}, []
    for split, indices in zip(common.SPLITS, parts):
        chosen = [pairs[i] for i in indices]
        audit.images_listed[split] = len(chosen)
        result[split] = _read_split(split, chosen, image_size, audit, prints)
    audit.leakage = check_leakage(prints)
    result = apply_after_split(policy, result, audit, [[pairs[i].source for i in group] for group in groups],
                               columns_of=lambda source, mask: [source.split("/", 1)[0]])
    return result, audit


def duplicate_pair_groups(pairs: list[Pair]) -> list[list[int]]:
    """Groups (indices into ``pairs``) of pairs whose Original images are copies or confirmed
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


def _read_split(split: str, pairs: list[Pair], image_size: int, audit: DataAudit,
                prints: list[ImagePrint]) -> SplitArrays:
    images, masks, sources = [], [], []
    for pair in pairs:
        decoded = _read_pair(split, pair, audit)
        if decoded is None:
            continue
        original, mask = decoded
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
    return original, segmentation_mask(segmented)


def _size(image: np.ndarray) -> str:
    return f"{image.shape[1]}x{image.shape[0]}"


def prepare_taleqani_segmentation(*, data_dir: str | None, image_size: int, leakage: str | None = None,
                                  use_cache: bool = True) -> tuple[ClassificationData, DataAudit]:
    """Images and masks of every split, and the audit of the whole dataset.

    ``leakage`` is the duplicate policy (``group`` by default; see ``leakage_policy``), the one
    option (``LeakageOptions``).
    """
    policy = resolve_policy(leakage, dataset=DATASET, splits_made_here=True)
    root = common.locate_taleqani(data_dir, folders=common.SEGMENTATION_FOLDERS)
    params = {"reader": READER_VERSION, "image_size": image_size, "seed": common.SPLIT_SEED,
              "fractions": list(common.SPLIT_FRACTIONS), "threshold": MASK_THRESHOLD, "leakage": policy}
    key = fingerprint(_source_files(root), root, params)
    cache_path = cache_dir() / "masks" / f"taleqani-{key[:20]}.npz"
    splits, audit = read_through_cache(
        cache_path, params, lambda: read_segmentation_pairs(root, image_size=image_size, leakage=policy),
        use_cache=use_cache)
    data = ClassificationData(name=DATASET, class_names=CLASS_NAMES, splits=splits, fingerprint=key)
    return data, audit


def _source_files(root: Path) -> list[Path]:
    return image_files(root / "Original") + image_files(root / "Segmented")
