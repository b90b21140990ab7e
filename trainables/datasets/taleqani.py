"""Taleqani ALL (Kaggle ``mehradaria/leukemia``) as binary cell/background segmentation.

The dataset has ``Original/<class>/<name>.jpg`` smears and ``Segmented/<class>/<name>.jpg``
copies in which the blast cells keep their colours and the background is a uniform colour
(typically black). Pairs are matched by class folder and file stem; the mask of a pair is the
pixels of its Segmented image that differ from that image's background. Like the studies
(STUDIES.md section 6), the pairs are shuffled globally with one seed and split 70/15/15, so
the class folders only matter for the audit. Decoded, resized pairs are cached by the data's
checksum and the reading parameters. The leakage check compares the Original images across
splits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from trainables.datasets.audit import DataAudit
from trainables.datasets.base import ClassificationData, SplitArrays
from trainables.datasets.cache import fingerprint, read_through_cache
from trainables.datasets.download import DATA_DIR_ENV, DataNotFoundError, cache_dir
from trainables.datasets.images import CorruptImageError, decode_rgb, resize_square
from trainables.datasets.leakage import ImagePrint, check_leakage, image_print

DATASET = "taleqani_segmentation"
CLASS_NAMES = ("background", "cell")
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)
SPLIT_SEED = 42
MASK_THRESHOLD = 30
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
UNPAIRED = "unpaired"
READER_VERSION = 2
KAGGLE_URL = "https://www.kaggle.com/datasets/mehradaria/leukemia"


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


def locate_taleqani(data_dir: str | None) -> Path:
    """The directory holding ``Original/`` and ``Segmented/``.

    That is ``data_dir`` itself or one of its direct subfolders (first in name order);
    ``None`` means ``$MEDSWEEP_DATA_DIR``. The dataset needs a Kaggle login, so it is never
    downloaded: when absent, the error lists every place looked and how to point at it.
    """
    base = data_dir or os.environ.get(DATA_DIR_ENV)
    looked = _candidate_dirs(Path(base).expanduser()) if base else []
    for candidate in looked:
        if _has_layout(candidate):
            return candidate
    raise DataNotFoundError(_not_found_message(looked))


def _candidate_dirs(base: Path) -> list[Path]:
    try:
        subfolders = sorted(p for p in base.iterdir() if p.is_dir())
    except OSError:
        subfolders = []
    return [base, *subfolders]


def _has_layout(folder: Path) -> bool:
    return (folder / "Original").is_dir() and (folder / "Segmented").is_dir()


def _not_found_message(looked: list[Path]) -> str:
    where = ("Looked in:\n" + "\n".join(f"  {p}" for p in looked) if looked
             else f"Neither --data-dir nor {DATA_DIR_ENV} is set, so there was nowhere to look.")
    return (f"Taleqani ALL data (a folder with Original/ and Segmented/) was not found.\n{where}\n"
            f"This dataset cannot be downloaded automatically: Kaggle requires a login. Download "
            f"{KAGGLE_URL}, unzip it, then pass --data-dir DIR or set {DATA_DIR_ENV}=DIR, where DIR "
            f"holds Original/ and Segmented/ or is the folder directly above it.\n"
            f"To try medsweep without it: python -m trainables.datasets.synthetic taleqani DIR")


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


def split_sizes(count: int, fractions: tuple[float, ...] = SPLIT_FRACTIONS) -> list[int]:
    """Samples per split: val and test by rounding, train the rest; none empty from 3 on."""
    if len(fractions) != len(SPLITS) or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be {len(SPLITS)} positive numbers summing to 1, "
                         f"got {fractions}")
    rest = [round(count * f) for f in fractions[1:]]
    if count >= len(SPLITS):
        rest = [max(1, n) for n in rest]
    return [count - sum(rest), *rest]


def read_segmentation_pairs(root: Path, *, image_size: int, seed: int = SPLIT_SEED,
                            fractions: tuple[float, ...] = SPLIT_FRACTIONS,
                            ) -> tuple[dict[str, SplitArrays], DataAudit]:
    """Images and binary masks of every split, and the audit of the whole tree.

    Matched pairs are shuffled once with ``seed`` and split by ``fractions``; then each pair is
    decoded, its mask computed at full resolution, and both resized to ``image_size`` (image
    bilinear, mask nearest). Unmatched files, undecodable images and pairs whose two images
    differ in size are dropped with a reason. The audit counts pairs: listed per split, read
    per split, and kept per split and class folder.
    """
    root = Path(root)
    audit = DataAudit(dataset=DATASET, root=str(root), class_names=CLASS_NAMES)
    pairs = match_pairs(root, audit)
    order = np.random.default_rng(seed).permutation(len(pairs))
    bounds = np.cumsum([0, *split_sizes(len(pairs), fractions)])
    result, prints = {}, []
    for split, start, stop in zip(SPLITS, bounds[:-1], bounds[1:]):
        chosen = [pairs[i] for i in order[start:stop]]
        audit.images_listed[split] = len(chosen)
        result[split] = _read_split(split, chosen, image_size, audit, prints)
    audit.leakage = check_leakage(prints)
    return result, audit


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
    return sorted(p for p in folder.glob("*/*")
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


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


def prepare_taleqani_segmentation(*, data_dir: str | None, image_size: int, padding: int = 10,
                                  use_cache: bool = True) -> tuple[ClassificationData, DataAudit]:
    """Images and masks of every split, and the audit of the whole dataset.

    ``padding`` is accepted because every dataset's prepare function takes the same keywords;
    segmentation uses whole images, so it is ignored.
    """
    root = locate_taleqani(data_dir)
    params = {"reader": READER_VERSION, "image_size": image_size, "seed": SPLIT_SEED,
              "fractions": list(SPLIT_FRACTIONS), "threshold": MASK_THRESHOLD}
    key = fingerprint(_source_files(root), root, params)
    cache_path = cache_dir() / "masks" / f"taleqani-{key[:20]}.npz"
    splits, audit = read_through_cache(
        cache_path, params, lambda: read_segmentation_pairs(root, image_size=image_size), use_cache=use_cache)
    data = ClassificationData(name=DATASET, class_names=CLASS_NAMES, splits=splits, fingerprint=key)
    return data, audit


def _source_files(root: Path) -> list[Path]:
    return image_files(root / "Original") + image_files(root / "Segmented")
