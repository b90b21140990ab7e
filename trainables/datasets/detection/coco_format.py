"""The generic ``coco`` dataset: a researcher's own detection or instance-segmentation data as
COCO instances JSON (boxes, polygons, RLE masks), and the planning and reading pipeline that
the lymphoblast reader shares (``DetectionPlan``, ``assign_splits``, ``read_planned``).

Layouts accepted in the data folder ``root`` (checked in this order):

* one file per split, which fixes the splits: the ``train``, ``val`` and ``test`` settings (JSON
  paths relative to ``root``, all three); else ``annotations/instances_train.json``,
  ``annotations/instances_val.json`` and ``annotations/instances_test.json``; else ``train/``,
  ``val/`` and ``test/`` folders each holding one COCO JSON file;
* one file, whose images medsweep splits by ``split_fractions`` with one seeded shuffle: the
  ``annotations`` setting (a path relative to ``root``); else the one COCO JSON file of
  ``root``, else the one of ``root/annotations/``.

Images. A ``file_name`` is a path relative to its JSON file's folder (``../images/a.png`` from
``annotations/`` is fine while it stays inside ``root``), looked for there, in that folder's
``images/``, then relative to ``root`` and in ``root/images/``. An absolute name or URL is
looked for by its last part.

Classes are the ``categories`` (their names in id order, read as written); every split file must
list the same categories. Annotations of an unknown category or image id, missing or unreadable
images and regions outside their image are left out and listed in the audit by name.

Masks. The data has instance masks (Mask R-CNN) when every annotation read has a polygon or RLE
segmentation; box-only files give box-only data (Faster R-CNN). A file mixing the two is read as
boxes only, every instance's box being its shape's extent, and the audit's notes say how many
annotations lacked a mask: a box cannot stand in for a mask without teaching the wrong outline.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from trainables.config import ConfigError
from trainables.datasets.audit import DataAudit
from trainables.datasets.base import DatasetError
from trainables.datasets.cache import file_digests
from trainables.datasets.detection.annotation_files import annotation_form, json_files, load_annotation_json
from trainables.datasets.detection.cache import cached_detection_data
from trainables.datasets.detection.coco import parse_coco
from trainables.datasets.detection.reading import (
    DetectionOptions,
    ReadSettings,
    ReadState,
    build_splits,
    read_annotated_image,
)
from trainables.datasets.detection.regions import IMAGE_FOLDER, AnnotatedImage, AnnotationSet, ClassMap, label_key
from trainables.datasets.detection.types import (
    LISTING,
    SPLITS,
    DetectionData,
    DetectionSplit,
    MalformedAnnotationFileError,
)
from trainables.datasets.folders import check_split_fractions, resolve_root
from trainables.datasets.leakage_policy import (
    Grouping,
    apply_after_split,
    duplicate_index_groups,
    resolve_policy,
    split_keeping_groups,
    unassigned_prints,
)
from trainables.datasets.options import LeakageOptions
from trainables.datasets.survey import DatasetSurvey
from trainables.datasets.taleqani_common import SPLIT_FRACTIONS, SPLIT_SEED, shuffled_split

COCO = "coco"
ALL = "all"                 # the split name of one file's images before medsweep splits them
ANNOTATION_FOLDER = "annotations"


# --- the plan shared with lymphoblast -----------------------------------------------------------

@dataclass(frozen=True)
class DetectionPlan:
    """What a dataset read will cover: its annotation files, the images of each split, the
    classes, and notes on how the layout was read. Cheap to make (no image is decoded), so the
    cache key can be computed from it. ``shuffle`` is the (seed, fractions) of the split medsweep
    made of the one annotation file's images, None where the data's own files fix the splits.
    ``with_masks``: whether the splits carry instance masks (else boxes only)."""

    dataset: str
    class_names: tuple[str, ...]
    root: Path
    annotation_sets: tuple[AnnotationSet, ...]
    splits: dict[str, tuple[AnnotatedImage, ...]]
    notes: tuple[str, ...]
    shuffle: tuple[int, tuple[float, float, float]] | None = None
    with_masks: bool = True

    @property
    def splits_made_here(self) -> bool:
        return self.shuffle is not None

    def keeping_together(self, groups: list[list[int]]) -> DetectionPlan:
        """The plan with the same seeded split, except that each group (indices into the
        annotation file's images) lands in one split (see ``assign_splits``)."""
        seed, fractions = self.shuffle
        return replace(self, splits=assign_splits(self.annotation_sets[0].images, seed=seed, fractions=fractions,
                                                  groups=groups))

    def source_files(self) -> list[Path]:
        images = {entry.path for entries in self.splits.values() for entry in entries} - {None}
        return [s.path for s in self.annotation_sets] + sorted(images)

    def policy(self, leakage: str | None) -> str:
        """The leakage policy to run: ``leakage``, or ``group`` where medsweep splits the data
        and ``warn`` where its files fix the splits (where ``group`` is an error)."""
        return resolve_policy(leakage, dataset=self.dataset, splits_made_here=self.splits_made_here)


def assign_splits(images: Sequence[AnnotatedImage], *, seed: int = SPLIT_SEED,
                  fractions: tuple[float, float, float] = SPLIT_FRACTIONS,
                  groups: list[list[int]] = ()) -> dict[str, tuple]:
    """``images`` shuffled once by ``seed`` and cut by ``fractions`` into train, val, test; each
    of the ``groups`` of duplicates (indices into ``images``) is shuffled and cut as one image
    (see ``split_keeping_groups``), so without groups the split is the plain one."""
    parts = split_keeping_groups(len(images), list(groups), lambda representatives: shuffled_split(
        np.arange(len(representatives)), np.random.default_rng(seed), fractions))
    return {split: tuple(images[i] for i in part) for split, part in zip(SPLITS, parts)}


def duplicate_image_groups(images: Sequence[AnnotatedImage]) -> Grouping:
    """The groups (indices into ``images``) of images that are copies or confirmed near-duplicates
    of each other, found before splitting (an image whose file is missing belongs to none)."""
    prints = unassigned_prints((entry.source, entry.path) for entry in images if entry.path is not None)
    return duplicate_index_groups([entry.source for entry in images], prints)


def layout_note(sets: Sequence[AnnotationSet], root: Path, how: str) -> str:
    """The audit note naming the annotation files read (with their form) and how they were split."""
    files = ", ".join(f"{s.path.relative_to(root).as_posix()} ({s.form}"
                      f"{f', class attribute {s.class_attribute!r}' if s.class_attribute else ''})" for s in sets)
    return f"Annotations: {files}; {how}."


def split_note(seed: int, fractions: Sequence[float]) -> str:
    return f"split {'/'.join(f'{round(f * 100)}' for f in fractions)} by one shuffle with seed {seed}"


def read_planned(plan: DetectionPlan, settings: ReadSettings,
                 policy: str) -> tuple[dict[str, DetectionSplit], DataAudit]:
    """The planned splits, every image decoded, scaled and preprocessed with its targets, under
    the resolved leakage ``policy`` (see ``leakage_policy``): ``group`` first moves each group
    of duplicate images into one split, the other policies act on the plain split; the audit
    says what was read, dropped, and what the policy did."""
    grouping = duplicate_image_groups(plan.annotation_sets[0].images) if policy == "group" else Grouping()
    splits, audit = _read_images(plan.keeping_together(grouping.indices) if grouping.indices else plan, settings)
    splits = apply_after_split(policy, splits, audit, grouping,
                               columns_of=lambda source, labels: [plan.class_names[label] for label in labels])
    return splits, audit


def _read_images(plan: DetectionPlan, settings: ReadSettings) -> tuple[dict[str, DetectionSplit], DataAudit]:
    audit = DataAudit(dataset=plan.dataset, root=str(plan.root), class_names=plan.class_names,
                      notes=[*plan.notes, settings.note()])
    state = ReadState(audit)
    for annotation_set in plan.annotation_sets:
        for item, reason in annotation_set.listing_drops:
            audit.drop(LISTING, f"{annotation_set.path.relative_to(plan.root).as_posix()}: {item}", reason)
    splits = build_splits(plan.splits, lambda split, entry, builder: read_annotated_image(
        split, entry, plan.class_names, settings, state, builder), audit=audit, with_masks=plan.with_masks)
    return splits, state.finish()


# --- the coco format's options, folder and files ------------------------------------------------

def relative_path_problem(value: str) -> bool:
    """Whether ``value`` cannot name a file inside a folder: empty, absolute (a leading slash or
    a drive, either slash), or climbing out with ``..``."""
    path = PureWindowsPath(value)  # splits on both / and \, and sees drives and leading slashes
    return not value.strip() or bool(path.anchor) or ".." in path.parts


@dataclass(frozen=True)
class CocoOptions(DetectionOptions, LeakageOptions):
    """``DetectionOptions`` (``preprocessing`` ``raw``, or ``segmented``: the study-4 recipe for
    stained blood smears, meaningless on other images; ``bilateral``), a leakage policy, and
    where the data is: ``root``, the folder (None: the data directory, ``--data-dir`` or
    ``$MEDSWEEP_DATA_DIR``; a relative path is taken inside the data directory when one is set,
    else the working directory); ``annotations``, the one COCO JSON file, or ``train``, ``val``
    and ``test``, one file per split (paths relative to ``root``; None: found as the module
    says); ``split_fractions``, the train, val and test fractions of one file's images."""

    root: str | None = None
    annotations: str | None = None
    train: str | None = None
    val: str | None = None
    test: str | None = None
    split_fractions: list[float] = field(default_factory=lambda: list(SPLIT_FRACTIONS))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.root is not None and not self.root.strip():
            raise ConfigError("data setting 'root' must be a folder (absolute, or relative to the data directory), "
                              "got ''", key="root")
        for key in ("annotations", *SPLITS):
            value = getattr(self, key)
            if value is not None and relative_path_problem(value):
                raise ConfigError(f"data setting {key!r} must be a JSON file's path relative to the root folder "
                                  f"(not empty, not absolute, no '..'), for example "
                                  f"annotations/instances_{'train' if key == 'annotations' else key}.json, "
                                  f"got {value!r}", key=key)
        given = [split for split in SPLITS if getattr(self, split) is not None]
        if given and self.annotations is not None:
            raise ConfigError(f"data settings 'annotations' (one file, split by medsweep) and {', '.join(given)} "
                              f"(one file per split) exclude each other; keep one of them", key="annotations")
        check_split_files(self.train, self.val, self.test)
        check_split_fractions(self.split_fractions)


def check_split_files(train: str | None, val: str | None, test: str | None) -> dict[str, str] | None:
    """The per-split files as {split: path}, or None when none is given; some but not all of
    them is an error naming the missing ones."""
    given = {split: value for split, value in zip(SPLITS, (train, val, test)) if value is not None}
    if given and len(given) < len(SPLITS):
        missing = [split for split in SPLITS if split not in given]
        raise ConfigError(f"data settings {', '.join(given)} name per-split COCO files, but {', '.join(missing)} "
                          f"{'is' if len(missing) == 1 else 'are'} missing: give all of train, val and test, or "
                          f"instead one file as 'annotations' for medsweep to split", key=missing[0])
    return given or None



def coco_files(root: Path, *, annotations: str | None = None,
               split_files: dict[str, str] | None = None) -> dict[str, Path]:
    """The COCO file(s) to read: ``{"all": path}`` for one file that medsweep splits, or one
    path per split (see the module for the layouts and their order)."""
    if annotations is not None:
        return {ALL: _named_file(root, "annotations", annotations)}
    if split_files:
        return {split: _named_file(root, split, split_files[split]) for split in SPLITS}
    instances = {split: root / ANNOTATION_FOLDER / f"instances_{split}.json" for split in SPLITS}
    present = [split for split, path in instances.items() if path.is_file()]
    if present and len(present) < len(SPLITS):
        missing = ", ".join(instances[split].name for split in SPLITS if split not in present)
        raise DatasetError(f"{root / ANNOTATION_FOLDER} holds {', '.join(instances[s].name for s in present)} but "
                           f"not {missing}: one COCO file per split needs all three; add the missing one(s), or "
                           f"name one file with the data setting 'annotations' for medsweep to split")
    if present:
        return instances
    folders = {split: _one_coco_file(root / split) for split in SPLITS}
    if all(folders.values()):
        return folders
    for folder in (root, root / ANNOTATION_FOLDER):
        if (found := _one_coco_file(folder)) is not None:
            return {ALL: found}
    raise DatasetError(
        f"{root} holds no COCO instances JSON file. Looked for annotations/instances_train.json, "
        f"instances_val.json and instances_test.json; train/, val/ and test/ folders each with one COCO file; "
        f"one COCO file in {root} or in {root / ANNOTATION_FOLDER}. JSON files found: "
        f"{', '.join(json_files(root)) or 'none'}. Name the file with the data setting 'annotations', or one "
        f"per split with 'train', 'val' and 'test'")


def _named_file(root: Path, key: str, value: str) -> Path:
    if relative_path_problem(value):
        raise DatasetError(f"data setting {key}={value!r}: give a JSON file's path relative to {root}, inside it "
                           f"(no absolute path, no '..')")
    path = root / PurePosixPath(value.replace("\\", "/"))
    if not path.is_file():
        raise DatasetError(f"data setting {key}={value}: no such file in {root}; JSON files there: "
                           f"{', '.join(json_files(root)) or 'none'}")
    return path


def _one_coco_file(folder: Path) -> Path | None:
    """The one COCO JSON file directly in ``folder``, or None; several are an error listing them."""
    found = [path for path in sorted(folder.glob("*.json")) if path.is_file() and _is_coco_json(path)]
    if len(found) > 1:
        raise DatasetError(f"{folder} holds {len(found)} COCO files: {', '.join(p.name for p in found)}; "
                           f"choose one with the data setting 'annotations' (its path relative to the root)")
    return found[0] if found else None


def _is_coco_json(path: Path) -> bool:
    try:
        return annotation_form(load_annotation_json(path)) == "COCO"
    except MalformedAnnotationFileError:
        return False


# --- planning a coco read -----------------------------------------------------------------------

def plan_coco(root: Path, *, annotations: str | None = None, split_files: dict[str, str] | None = None,
              seed: int = SPLIT_SEED, fractions: Sequence[float] = SPLIT_FRACTIONS) -> DetectionPlan:
    """The images per split of the COCO file(s) in ``root`` (absolute; see ``coco_files``), the
    classes (the categories in id order) and whether the data has masks; one file's images,
    sorted by name, are shuffled once by ``seed`` and cut by ``fractions``."""
    files = coco_files(root, annotations=annotations, split_files=split_files)
    documents = {split: _coco_document(path) for split, path in files.items()}
    categories = _same_categories({files[split]: coco_categories(doc, files[split])
                                   for split, doc in documents.items()}, root)
    class_names = tuple(name for _, name in categories)
    sets = {split: _located(_parsed(doc, files[split], ClassMap(class_names)), root)
            for split, doc in documents.items()}
    if ALL in sets:
        shuffle = (seed, tuple(fractions))
        splits, how = assign_splits(sets[ALL].images, seed=seed, fractions=shuffle[1]), split_note(*shuffle)
    else:
        shuffle, splits, how = None, {split: sets[split].images for split in SPLITS}, "splits fixed by the files"
    if not any(splits.values()):
        raise DatasetError(f"{', '.join(str(path) for path in files.values())}: no images listed under 'images'")
    with_masks, masks_note = masks_decision([region for annotation_set in sets.values()
                                             for image in annotation_set.images for region in image.regions])
    notes = (layout_note(list(sets.values()), root, how), _classes_note(categories), masks_note)
    return DetectionPlan(COCO, class_names, root, tuple(sets.values()), splits, notes, shuffle, with_masks)


def _coco_document(path: Path) -> dict:
    try:
        doc = load_annotation_json(path)
    except MalformedAnnotationFileError as exc:
        raise DatasetError(str(exc)) from exc
    form = annotation_form(doc)
    if form != "COCO":
        also = "; it is a VIA file, which the lymphoblast dataset reads" if form == "VIA" else ""
        raise DatasetError(f"{path}: not COCO instances JSON, whose top level holds 'images', 'annotations' "
                           f"and 'categories' lists{also}")
    return doc


def _parsed(doc: dict, path: Path, class_map: ClassMap) -> AnnotationSet:
    try:
        return parse_coco(doc, path, class_map)
    except MalformedAnnotationFileError as exc:
        raise DatasetError(str(exc)) from exc


def coco_categories(doc: dict, path: Path) -> tuple[tuple[int, str], ...]:
    """The file's categories as (id, name), in id order. Each needs an integer id and a name;
    two with one id, or with names that differ only in case, spaces or punctuation (which the
    reader could not tell apart), are an error."""
    categories = doc.get("categories")
    if not isinstance(categories, list) or not categories:
        raise DatasetError(f"{path}: key 'categories' is missing, empty or not a list; COCO lists each class "
                           f'there as {{"id": 1, "name": "..."}}')
    pairs = []
    for index, category in enumerate(categories):
        number, name = (category.get("id"), category.get("name")) if isinstance(category, dict) else (None, None)
        if not isinstance(number, int) or isinstance(number, bool) or not isinstance(name, str) or not name.strip():
            raise DatasetError(f"{path}: categories[{index}] needs an integer 'id' and a non-empty 'name', "
                               f"got {category!r}")
        pairs.append((number, name))
    for what, values in (("id", [number for number, _ in pairs]), ("name", [label_key(name) for _, name in pairs])):
        repeated = [value for value, count in Counter(values).items() if count > 1]
        if repeated:
            clashing = [f"{number} {name!r}" for number, name in pairs
                        if (number if what == "id" else label_key(name)) in repeated]
            raise DatasetError(f"{path}: categories {', '.join(clashing)} share one {what}"
                               f"{' (case, spaces and punctuation aside)' if what == 'name' else ''}; "
                               f"give each class its own id and name")
    return tuple(sorted(pairs))


def _same_categories(found: dict[Path, tuple[tuple[int, str], ...]], root: Path) -> tuple[tuple[int, str], ...]:
    """The categories every file lists; files that differ are an error showing each file's."""
    distinct = set(found.values())
    if len(distinct) > 1:
        listed = "; ".join(f"{path.relative_to(root).as_posix()}: {', '.join(f'{i} {n}' for i, n in categories)}"
                           for path, categories in found.items())
        raise DatasetError(f"the split files list different categories ({listed}). The model's classes are "
                           f"the same for every split: give every file the same 'categories' list (ids and names)")
    return next(iter(distinct))


def _classes_note(categories: tuple[tuple[int, str], ...]) -> str:
    return f"Classes from the categories, in id order: {', '.join(f'{i} {n}' for i, n in categories)}."


def masks_decision(regions: Sequence) -> tuple[bool, str]:
    """Whether data of these regions has instance masks, and the audit note saying why: masks
    only when every region is a polygon or RLE mask; bare boxes make the data boxes only."""
    boxes = sum(region.box is not None for region in regions)
    if not regions:
        return False, "Masks: none; the files hold no usable annotation, so the data is boxes only (Faster R-CNN)."
    if not boxes:
        return True, (f"Masks: all {len(regions)} annotations have a polygon or RLE segmentation, so the data "
                      f"has instance masks (Mask R-CNN).")
    if boxes == len(regions):
        return False, f"Masks: none; the {len(regions)} annotations are boxes only (Faster R-CNN)."
    return False, (f"Masks: {boxes} of the {len(regions)} annotations are bare boxes without a segmentation, so "
                   f"masks are left out and every instance is read as its box (Faster R-CNN); give every "
                   f"annotation a polygon or RLE segmentation to train Mask R-CNN.")


def _located(annotation_set: AnnotationSet, root: Path) -> AnnotationSet:
    """The set with each image looked for where the coco format looks (``image_locations``)."""
    folder = annotation_set.path.parent
    return replace(annotation_set, images=tuple(replace(image, candidates=image_locations(image.source, folder, root))
                                                for image in annotation_set.images))


def image_locations(name: str, folder: Path, root: Path) -> tuple[Path, ...]:
    """Where the image a COCO file in ``folder`` names may be: relative to ``folder``, its
    ``images/``, ``root`` and ``root/images/``, each only where it stays inside ``root`` (which
    is absolute). A name that is absolute, a URL, or leaves ``root`` from ``folder`` is looked
    for by its last part."""
    relative = PurePosixPath(name.replace("\\", "/"))
    if relative.is_absolute() or ":" in name or not _inside(folder / relative, root):
        relative = PurePosixPath(relative.name)
    bases = (folder, folder / IMAGE_FOLDER, root, root / IMAGE_FOLDER)
    return tuple(dict.fromkeys(Path(os.path.normpath(base / relative)) for base in bases
                               if _inside(base / relative, root)))


def _inside(path: Path, root: Path) -> bool:
    return Path(os.path.normpath(path)).is_relative_to(root)


# --- preparing and surveying --------------------------------------------------------------------

def prepare_coco(*, data_dir: str | None, image_size: int, preprocessing: str = "raw", bilateral: bool = False,
                 leakage: str | None = None, root: str | None = None, annotations: str | None = None,
                 train: str | None = None, val: str | None = None, test: str | None = None,
                 split_fractions: Sequence[float] = SPLIT_FRACTIONS,
                 use_cache: bool = True) -> tuple[DetectionData, DataAudit]:
    """The instances of every split of a folder of COCO data, and the audit; the keywords after
    ``image_size`` are ``CocoOptions``'s fields.

    ``leakage`` is the duplicate policy (``group`` by default where medsweep splits one file,
    ``warn`` where per-split files fix the splits, and ``group`` is refused there; see
    ``leakage_policy``). The result is cached by the files' checksums, which file is which
    split, the split, the image size, the preprocessing and the leakage policy.
    """
    settings = ReadSettings(image_size, preprocessing, bilateral)
    plan = plan_coco(resolve_root(COCO, root, data_dir, holding="the COCO JSON file(s)"), annotations=annotations,
                     split_files=check_split_files(train, val, test), fractions=tuple(split_fractions))
    policy = plan.policy(leakage)
    files = [s.path.relative_to(plan.root).as_posix() for s in plan.annotation_sets]   # in split order
    params = {**settings.params(), "leakage": policy, "split": plan.shuffle, "files": files}
    return cached_detection_data(COCO, plan.class_names, plan.root, file_digests(plan.source_files()), params,
                                 lambda: read_planned(plan, settings, policy), use_cache)


def survey_coco(root: str | Path, *, annotations: str | None = None, train: str | None = None,
                val: str | None = None, test: str | None = None) -> DatasetSurvey:
    """The folder ``root`` as the coco format reads it, without decoding images: the classes,
    instances per class per split (``all`` where medsweep will split one file), image sizes
    (from the files' width and height, else the image header), the images and annotations the
    reader will drop and why, and whether the data has masks (Mask R-CNN) or boxes only."""
    folder = Path(os.path.abspath(Path(root).expanduser()))
    if not folder.is_dir():
        raise DatasetError(f"dataset coco: {folder} is not a folder; survey the folder holding the COCO JSON file(s)")
    given = {"annotations": annotations, "train": train, "val": val, "test": test}
    plan = plan_coco(folder, annotations=annotations, split_files=check_split_files(train, val, test))
    listed = {ALL: plan.annotation_sets[0].images} if plan.splits_made_here else plan.splits
    surveyed = {split: [_surveyed(image, split) for image in images] for split, images in listed.items()}
    listing = [f"{s.path.relative_to(folder).as_posix()}: {item}: {reason}"
               for s in plan.annotation_sets for item, reason in s.listing_drops]
    return DatasetSurvey(
        format=COCO, task="detection", root=folder, layout=plan.notes[0], class_names=plan.class_names,
        counts={split: _instances(images, plan.class_names) for split, images in listed.items()},
        image_sizes=tuple(size for rows in surveyed.values() for size, _ in rows if size is not None),
        channels=3, fixed_splits=not plan.splits_made_here,
        options={"root": str(folder), **{key: value for key, value in given.items() if value is not None}},
        problems=(*listing, *(problem for rows in surveyed.values() for _, problems in rows for problem in problems)),
        notes=plan.notes[1:])


def _instances(images: Sequence[AnnotatedImage], class_names: tuple[str, ...]) -> dict[str, int]:
    counts = Counter(region.class_name for image in images for region in image.regions)
    return {name: counts[name] for name in class_names}


def _surveyed(image: AnnotatedImage, split: str) -> tuple[tuple[int, int] | None, list[str]]:
    """The image's (width, height) (declared, else from its header) and the problems the
    reader will drop it or its annotations for."""
    problems = [f"{split}: {item}: {reason}" for item, reason in image.rejected]
    path = image.path
    if path is None:
        where = " or ".join(str(p) for p in image.candidates)
        return None, [*problems, f"{split}: {image.source}: image file not found (looked for {where}; "
                                 f"{image.annotation_count} annotation(s) lost)"]
    if image.declared_size is not None:
        return image.declared_size, problems
    try:
        with Image.open(path) as opened:
            return opened.size, problems
    except (OSError, UnidentifiedImageError) as exc:
        return None, [*problems, f"{split}: {image.source}: unreadable image ({exc})"]
