"""BCCD's Pascal VOC boxes read as a box-only detection dataset, the lymphoblast study's
runnable twin, its options (``BCCDDetectionOptions``) and ``prepare_bccd_detection``, its
registered prepare function."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainables.datasets.audit import DataAudit
from trainables.datasets.bccd import bccd_manifest_check, bccd_source_files, locate_bccd
from trainables.datasets.cache import file_digests
from trainables.datasets.detection.cache import cached_detection_data
from trainables.datasets.detection.geometry import scaled_size
from trainables.datasets.detection.reading import (
    DetectionOptions,
    ReadSettings,
    ReadState,
    SplitBuilder,
    build_splits,
    crosses_edge,
    lies_outside,
)
from trainables.datasets.detection.types import SPLITS, DetectionData, DetectionSplit
from trainables.datasets.leakage_policy import Grouping, apply_after_split, resolve_policy
from trainables.datasets.options import LeakageOptions
from trainables.datasets.voc import MalformedAnnotationError, VocBox, parse_annotation, read_split_list

BCCD_DETECTION = "bccd_detection"
BCCD_CLASSES = ("RBC", "WBC", "Platelets")


@dataclass(frozen=True)
class BCCDDetectionOptions(DetectionOptions, LeakageOptions):
    """``DetectionOptions`` and a leakage policy for BCCD's own (fixed) splits: warn (the
    default), drop or fail, as for the classification ``bccd``."""


def read_bccd_detection(root: Path, *, image_size: int, preprocessing: str = "raw", bilateral: bool = False,
                        leakage: str | None = None) -> tuple[dict[str, DetectionSplit], DataAudit]:
    """BCCD's boxes per image (box-only: ``masks`` is None), split by the dataset's own lists,
    and the audit. Zero-area and inverted boxes, boxes of unknown classes and boxes entirely
    outside their image are dropped; boxes crossing the edge are clipped. Boxes are scaled with the image.
    ``leakage`` is the duplicate policy for the fixed splits (see ``bccd_leakage_policy``)."""
    settings = ReadSettings(image_size, preprocessing, bilateral)
    policy = bccd_leakage_policy(leakage)
    audit = DataAudit(dataset=BCCD_DETECTION, root=str(root), class_names=BCCD_CLASSES,
                      notes=["Splits: the dataset's own ImageSets/Main lists.", settings.note()])
    state = ReadState(audit)
    splits = build_splits({split: read_split_list(root, split) for split in SPLITS},
                          lambda split, image_id, builder: _read_voc_image(root, split, image_id, settings, state,
                                                                           builder),
                          audit=audit, with_masks=False)
    audit = state.finish()
    splits = apply_after_split(policy, splits, audit, Grouping(),
                               columns_of=lambda source, labels: [BCCD_CLASSES[label] for label in labels])
    return splits, audit


def bccd_leakage_policy(leakage: str | None) -> str:
    """The leakage policy to run on BCCD's fixed splits: ``leakage``, ``warn`` when None;
    ``group``, which would move images between the dataset's own splits, is an error."""
    return resolve_policy(leakage, dataset=BCCD_DETECTION, splits_made_here=False)


def _read_voc_image(root: Path, split: str, image_id: str, settings: ReadSettings, state: ReadState,
                    builder: SplitBuilder) -> None:
    xml_path = root / "Annotations" / f"{image_id}.xml"
    jpg_path = root / "JPEGImages" / f"{image_id}.jpg"
    if not xml_path.is_file():
        state.audit.drop(split, image_id, f"annotation {xml_path.name} is missing")
        return
    try:
        annotation = parse_annotation(xml_path)
    except MalformedAnnotationError as exc:
        state.audit.drop(split, image_id, f"malformed annotation: {exc}")
        return
    state.audit.annotations_read[split] += len(annotation.boxes)
    image = state.decoded(split, image_id, jpg_path if jpg_path.is_file() else None, len(annotation.boxes),
                          f"looked for {jpg_path}")
    if image is None:
        return
    height, width = image.shape[:2]
    scaled = scaled_size(width, height, settings.image_size)
    factors = np.array([scaled[0] / width, scaled[1] / height] * 2, np.float32)
    boxes, labels = [], []
    for number, box in enumerate(annotation.boxes):
        kept = _kept_voc_box(split, f"{image_id} box {number} {box.class_name} {box.as_tuple()}",
                             box, width, height, state)
        if kept is not None:
            boxes.append(kept * factors)
            labels.append(BCCD_CLASSES.index(box.class_name))
    builder.add(image_id, settings.prepare(image), boxes, labels, [])


def _kept_voc_box(split: str, item: str, box: VocBox, width: int, height: int,
                  state: ReadState) -> np.ndarray | None:
    """The box clipped to the image (float32 x1, y1, x2, y2), or None with the box dropped."""
    if box.class_name not in BCCD_CLASSES:
        state.audit.drop(split, item, f"unknown class {box.class_name!r} (valid: {', '.join(BCCD_CLASSES)})")
        return None
    if problem := box.shape_problem():
        state.audit.drop(split, item, problem)
        return None
    if lies_outside(box.as_tuple(), width, height):
        state.audit.drop(split, item, f"box outside the {width}x{height} image")
        return None
    state.clipped += crosses_edge(box.as_tuple(), width, height)
    state.audit.keep(split, box.class_name)
    return np.clip(np.asarray(box.as_tuple(), np.float32), 0, [width, height, width, height])


def prepare_bccd_detection(*, data_dir: str | None, image_size: int,
                           preprocessing: str = "raw", bilateral: bool = False, leakage: str | None = None,
                           use_cache: bool = True) -> tuple[DetectionData, DataAudit]:
    """BCCD's RBC / WBC / Platelets boxes of every split (no masks), and the audit.

    The keywords after ``image_size`` are ``BCCDDetectionOptions``'s fields; ``leakage`` is the
    duplicate policy for the fixed splits (warn by default, drop or fail). Cached like
    ``prepare_lymphoblast``, by the leakage policy too; the files read are compared with the
    pinned manifest like ``prepare_bccd``'s.
    """
    settings = ReadSettings(image_size, preprocessing, bilateral)
    policy = bccd_leakage_policy(leakage)
    root = locate_bccd(data_dir)
    digests = file_digests(bccd_source_files(root))
    data, audit = cached_detection_data(BCCD_DETECTION, BCCD_CLASSES, root, digests,
                                        {**settings.params(), "leakage": policy},
                                        lambda: read_bccd_detection(root, image_size=image_size,
                                                                    preprocessing=preprocessing, bilateral=bilateral,
                                                                    leakage=policy), use_cache)
    audit.manifest = bccd_manifest_check(root, digests)
    return data, audit
