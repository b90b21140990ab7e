"""Finding and reading a folder's annotation file: telling VIA from COCO by its top-level
keys, the fixed names taken first, the one VIA or COCO file otherwise, and the file chosen
with ``--set annotations=FILE``; ambiguous or missing choices are errors that list the files."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from trainables.datasets.detection.coco import parse_coco
from trainables.datasets.detection.regions import AnnotationSet, ClassMap
from trainables.datasets.detection.types import AnnotationFileChoiceError, MalformedAnnotationFileError
from trainables.datasets.detection.via import parse_via

ANNOTATION_NAMES = ("annotations.json", "via_region_data.json")


def read_annotation_file(path: Path, class_map: ClassMap, *,
                         class_attribute: str | None = None) -> AnnotationSet:
    """The images and regions of a VIA 2.x (project or annotation export, regions as a list or
    VIA 1.x dict) or COCO instances JSON file, told apart by their keys. Images are looked
    for next to the file and in its ``images/`` folder."""
    path = Path(path)
    doc = load_annotation_json(path)
    form = annotation_form(doc)
    if form == "COCO":
        return parse_coco(doc, path, class_map)
    if form == "VIA":
        return parse_via(doc, path, class_map, class_attribute=class_attribute)
    keys = sorted(doc)[:8] if isinstance(doc, dict) else type(doc).__name__
    raise MalformedAnnotationFileError(
        f"{path}: neither VIA nor COCO JSON (top level: {keys}). Expected a VIA 2.x project "
        f"(key '_via_img_metadata'), a VIA annotation export (entries with 'filename' and "
        f"'regions'), or COCO instances (keys 'images', 'annotations', 'categories').")


def load_annotation_json(path: Path) -> object:
    """The parsed JSON document at ``path``; a file that is not UTF-8 JSON is an error naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MalformedAnnotationFileError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            f"re-export it from the annotation tool (VIA: Annotation > Export annotations as json) "
            f"or fix it") from exc
    except UnicodeDecodeError as exc:
        raise MalformedAnnotationFileError(f"{path}: not UTF-8 text ({exc}); is it really a JSON file?") from exc


def annotation_form(doc) -> str | None:
    """``"COCO"`` or ``"VIA"`` when a parsed JSON document has that format's top-level keys
    (a VIA project's ``_via_img_metadata``, or entries with ``filename``; COCO's ``images`` and
    ``annotations``), else None. Only the top level is looked at; the readers check the rest."""
    if isinstance(doc, dict) and "images" in doc and "annotations" in doc:
        return "COCO"
    if isinstance(doc, dict) and (isinstance(doc.get("_via_img_metadata"), dict) or _looks_like_via_export(doc)):
        return "VIA"
    return None


def _looks_like_via_export(doc: dict) -> bool:
    return bool(doc) and all(isinstance(v, dict) and "filename" in v for v in doc.values())


def find_annotation_file(folder: Path) -> Path | None:
    """The folder's annotation file, or None. ``annotations.json`` or ``via_region_data.json``
    comes first (both is an error: which one is meant?); without them, the one JSON file of the
    folder that is VIA or COCO in shape. Several such files is an error that lists them, since
    guessing would silently train on the wrong labels."""
    fixed = [folder / name for name in ANNOTATION_NAMES if (folder / name).is_file()]
    if len(fixed) > 1:
        raise AnnotationFileChoiceError(
            f"{folder} holds both {' and '.join(p.name for p in fixed)}; keep only the one to use there, "
            f"or choose one with --set annotations=FILE (its path relative to the data folder)")
    if fixed:
        return fixed[0]
    candidates = annotation_candidates(folder)
    if len(candidates) > 1:
        raise AnnotationFileChoiceError(
            f"{folder} holds {len(candidates)} VIA or COCO annotation files: "
            f"{', '.join(p.name for p in candidates)}. Keep only the one to use there, or choose one "
            f"with --set annotations=FILE (its path relative to the data folder)")
    return candidates[0] if candidates else None


def annotation_candidates(folder: Path) -> list[Path]:
    """The ``*.json`` files directly in ``folder`` that parse as VIA or COCO (``annotation_form``),
    sorted by name. Files that are not JSON or of another shape are not candidates."""
    return [path for path in sorted(folder.glob("*.json")) if path.is_file() and _is_annotation_json(path)]


def _is_annotation_json(path: Path) -> bool:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return annotation_form(doc) is not None


def named_annotation_file(root: Path, annotations: str) -> Path:
    """The annotation file chosen with ``--set annotations=FILE``: ``root / annotations``,
    which must be a file inside the data folder ``root``."""
    relative = PurePosixPath(annotations)
    if relative.is_absolute() or ".." in relative.parts:
        raise AnnotationFileChoiceError(
            f"--set annotations={annotations}: give the file's path relative to the data folder "
            f"{root}, inside it (no absolute path, no ..)")
    if not (root / relative).is_file():
        raise missing_named_file(annotations, [root])
    return root / relative


def missing_named_file(annotations: str, folders: list[Path]) -> AnnotationFileChoiceError:
    found = [f"{folder}: {', '.join(json_files(folder)) or 'no JSON files'}" for folder in folders
             if folder.is_dir()]
    return AnnotationFileChoiceError(
        f"--set annotations={annotations}: no such file in {' or '.join(str(f) for f in folders)} "
        f"(the path is relative to the data folder). JSON files found:\n"
        + "\n".join(f"  {line}" for line in found or ["none (no such folder)"]))


def json_files(folder: Path) -> list[str]:
    """The JSON files in ``folder`` and its direct subfolders, as paths relative to it."""
    return sorted(p.relative_to(folder).as_posix() for p in [*folder.glob("*.json"), *folder.glob("*/*.json")])
