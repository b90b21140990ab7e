"""The private lymphoblast smears of study 4 (seed 003): a preset of the coco format's planning
and reading (``coco_format``) with fixed classes and their label spellings, VIA files besides
COCO ones, the document's 70/20/10 split, and its own locating and messages; and
``prepare_lymphoblast``, the dataset's registered prepare function."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from trainables.config import ConfigError
from trainables.datasets.audit import DataAudit
from trainables.datasets.cache import file_digests
from trainables.datasets.detection.annotation_files import (
    ANNOTATION_NAMES,
    annotation_candidates,
    find_annotation_file,
    json_files,
    missing_named_file,
    named_annotation_file,
    read_annotation_file,
)
from trainables.datasets.detection.cache import cached_detection_data
from trainables.datasets.detection.coco_format import (
    SPLIT_SEED,
    DetectionPlan,
    assign_splits,
    layout_note,
    read_planned,
    relative_path_problem,
    split_note,
)
from trainables.datasets.detection.reading import DetectionOptions, ReadSettings
from trainables.datasets.detection.regions import IMAGE_FOLDER, ClassMap
from trainables.datasets.detection.types import SPLITS, DetectionData, DetectionSplit
from trainables.datasets.download import DATA_DIR_ENV, DataNotFoundError
from trainables.datasets.options import LeakageOptions

LYMPHOBLAST = "lymphoblast"
LYMPHOBLAST_CLASSES = ("lymphoblast", "non-lymphoblast")
# Label spellings accepted for each class, compared after ``label_key`` normalisation: the
# document is Indonesian, and its annotators labelled cells "limfoblas" / "non-limfoblas".
LABEL_SPELLINGS = {
    "lymphoblast": ("lymphoblast", "lymphoblasts", "limfoblas", "limfoblast", "sel limfoblas"),
    "non-lymphoblast": ("non-lymphoblast", "non-lymphoblasts", "non-limfoblas", "non-limfoblast",
                        "bukan limfoblas", "sel non-limfoblas"),
}
LYMPHOBLAST_FRACTIONS = (0.7, 0.2, 0.1)


def locate_lymphoblast(data_dir: str | None, *, annotations: str | None = None) -> Path:
    """The lymphoblast dataset folder: ``<dir>/lymphoblast`` or ``<dir>`` itself, where
    ``<dir>`` is ``data_dir`` or else ``$MEDSWEEP_DATA_DIR``, and the folder holds an annotation
    file (see ``find_annotation_file``; the file ``annotations`` names, when given) or
    ``train/``, ``val/``, ``test/`` folders each holding one. The data is private, so it is
    never downloaded."""
    base = data_dir or os.environ.get(DATA_DIR_ENV)
    looked = [Path(base).expanduser() / LYMPHOBLAST, Path(base).expanduser()] if base else []
    for folder in looked:
        if (folder / annotations).is_file() if annotations else _holds_annotations(folder):
            return folder
    if annotations and looked:
        raise missing_named_file(annotations, looked)
    where = ("Looked in:\n" + "\n".join(f"  {p}" for p in looked) if looked
             else f"Neither --data-dir nor {DATA_DIR_ENV} is set, so there was nowhere to look.")
    raise DataNotFoundError(
        f"Lymphoblast data was not found.\n{where}\n"
        f"It is private (seed 003: 1,461 smears from RSUP Dr. Sardjito Yogyakarta) and cannot be "
        f"downloaded. With access to it, put the VIA 2.x (or COCO) JSON file (any name; "
        f"{' or '.join(ANNOTATION_NAMES)} is taken first, --set annotations=FILE picks one of several) "
        f"in a folder with the images next to it or in {IMAGE_FOLDER}/ (or train/, val/, test/ folders "
        f"each laid out so), then pass --data-dir DIR or set {DATA_DIR_ENV}=DIR, where DIR is that "
        f"folder or holds it as {LYMPHOBLAST}/.\n"
        f"To try medsweep without it, from a clone of the repository: "
        f"python -m tests.synthetic_data lymphoblast OUT, "
        f"then --data-dir OUT")


def _holds_annotations(folder: Path) -> bool:
    """Whether ``folder`` has train/, val/ and test/ folders each with an annotation file, or
    one of its own."""
    return all(find_annotation_file(folder / s) for s in SPLITS) or find_annotation_file(folder) is not None


def plan_lymphoblast(root: Path, *, annotations: str | None = None, class_attribute: str | None = None,
                     seed: int = SPLIT_SEED,
                     fractions: tuple[float, float, float] = LYMPHOBLAST_FRACTIONS) -> DetectionPlan:
    """The lymphoblast images per split. ``annotations`` (a path relative to ``root``) names the
    one annotation file to read. Otherwise, with ``train/``, ``val/``, ``test/`` folders each
    holding an annotation file, those are the splits; else the root's one file (see
    ``find_annotation_file``) is read. One file's images, sorted by name, are shuffled once with
    ``seed`` and split by ``fractions`` (the document's 70/20/10); reading may then keep
    duplicates together (``DetectionPlan.keeping_together``)."""
    root = Path(root)
    class_map = ClassMap(LYMPHOBLAST_CLASSES, LABEL_SPELLINGS)
    per_split = {} if annotations else {split: find_annotation_file(root / split) for split in SPLITS}
    folders_split = bool(per_split) and all(per_split.values())
    if folders_split:
        sets = tuple(read_annotation_file(per_split[s], class_map, class_attribute=class_attribute) for s in SPLITS)
        splits = {split: annotation_set.images for split, annotation_set in zip(SPLITS, sets)}
        how = "splits from the train/, val/ and test/ folders' own annotation files"
        unused = annotation_candidates(root)
        if unused:
            how += f" ({', '.join(p.name for p in unused)} at the top not used)"
    else:
        top = named_annotation_file(root, annotations) if annotations else find_annotation_file(root)
        if top is None:
            raise DataNotFoundError(
                f"{root} has no VIA or COCO annotation file (nor train/, val/, test/ folders each holding "
                f"one); JSON files there: {', '.join(json_files(root)) or 'none'}")
        sets = (read_annotation_file(top, class_map, class_attribute=class_attribute),)
        splits = assign_splits(sets[0].images, seed=seed, fractions=fractions)
        how = split_note(seed, fractions)
    if not any(splits.values()):
        raise DataNotFoundError(f"{', '.join(str(s.path) for s in sets)} list(s) no images")
    return DetectionPlan(LYMPHOBLAST, LYMPHOBLAST_CLASSES, root, sets, splits,
                         (layout_note(sets, root, how), _label_note(class_map)),
                         shuffle=None if folders_split else (seed, fractions))


def _label_note(class_map: ClassMap) -> str:
    mapping = ", ".join(f"{label!r} → {name} ({count})"
                        for (label, name), count in sorted(class_map.spellings.items()))
    return f"Labels read as classes: {mapping or 'none'}."


def read_lymphoblast(root: Path, *, image_size: int, preprocessing: str = "raw", bilateral: bool = False,
                     annotations: str | None = None, class_attribute: str | None = None,
                     seed: int = SPLIT_SEED, leakage: str | None = None,
                     ) -> tuple[dict[str, DetectionSplit], DataAudit]:
    """The lymphoblast splits (images, boxes, labels, masks) and their audit, uncached."""
    settings = ReadSettings(image_size, preprocessing, bilateral)
    plan = plan_lymphoblast(root, annotations=annotations, class_attribute=class_attribute, seed=seed)
    return read_planned(plan, settings, plan.policy(leakage))


@dataclass(frozen=True)
class LymphoblastOptions(DetectionOptions, LeakageOptions):
    """``DetectionOptions`` and a leakage policy, and ``annotations``: the annotation file, a
    name or a path relative to the data folder (None: found as ``find_annotation_file`` says)."""

    annotations: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.annotations is not None and relative_path_problem(self.annotations):
            raise ConfigError(f"data setting 'annotations' must be a file name or a relative path inside the data "
                              f"directory (not empty, not absolute, no '..'), for example via_project.json, "
                              f"got {self.annotations!r}", key="annotations")


def prepare_lymphoblast(*, data_dir: str | None, image_size: int,
                        preprocessing: str = "raw", bilateral: bool = False, annotations: str | None = None,
                        leakage: str | None = None, use_cache: bool = True) -> tuple[DetectionData, DataAudit]:
    """Lymphoblast / non-lymphoblast instances of every split, and the audit of the dataset;
    the keywords after ``image_size`` are ``LymphoblastOptions``'s fields.

    ``preprocessing`` is ``raw`` or ``segmented`` (see ``preprocess``); ``bilateral`` adds the
    bilateral filter first. ``annotations`` names the annotation file (relative to the data
    folder) when the folder's own cannot be found unambiguously (see ``find_annotation_file``).
    ``leakage`` is the duplicate policy (``group`` by default where medsweep makes the split,
    ``warn`` where train/val/test folders fix it; see ``leakage_policy``). The result is cached
    by the data's checksum, the image size, the preprocessing and the leakage policy.
    """
    settings = ReadSettings(image_size, preprocessing, bilateral)
    plan = plan_lymphoblast(locate_lymphoblast(data_dir, annotations=annotations), annotations=annotations)
    policy = plan.policy(leakage)
    return cached_detection_data(LYMPHOBLAST, LYMPHOBLAST_CLASSES, plan.root, file_digests(plan.source_files()),
                     {**settings.params(), "leakage": policy},
                     lambda: read_planned(plan, settings, policy), use_cache)
