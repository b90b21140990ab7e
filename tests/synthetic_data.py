"""Small fake datasets written in the real on-disk layouts.

Tests use them, and so can a researcher who wants to try medsweep before getting the real
data::

    python -m tests.synthetic_data taleqani OUT [--per-class N] [--size PX] [--seed S]
                                                [--short-names] [--class-cue]
    python -m tests.synthetic_data chestmnist OUT [--size PX] [--seed S] [--per-split A,B,C]
    python -m tests.synthetic_data lymphoblast OUT [--images N] [--size PX] [--seed S]
                                                   [--form via|coco]

The images only look vaguely like blood smears or chest X-rays; they exist to exercise the
readers. ``--class-cue`` (Taleqani), the ChestMNIST classes and the two lymphoblast cell kinds
carry a visible difference, so a small model can learn something in a smoke run, nothing more.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

TALEQANI_CLASSES = ("Benign", "[Malignant] early Pre-B", "[Malignant] Pre-B", "[Malignant] Pro-B")
TALEQANI_SHORT_CLASSES = ("Benign", "Early", "Pre", "Pro")
MIN_SIZE = 24

CHESTMNIST_SIZES = (28, 64, 128, 224)
CHESTMNIST_SPLITS = ("train", "val", "test")
CHESTMNIST_FINDINGS = 14
CARDIOMEGALY, PNEUMOTHORAX = 1, 7
# One cycle of the rows written per split: the two kept single labels, and every kind of row
# the reader must filter out (no finding, another single finding, several findings).
_CHEST_ROW_KINDS = ("cardiomegaly", "pneumothorax", "no finding", "cardiomegaly", "pneumothorax",
                    "other finding", "cardiomegaly", "pneumothorax", "several findings", "no finding")

_BACKGROUND = (240, 218, 224)   # light pink plasma
_RED_CELL = (228, 168, 176)     # pale red discs
_BLAST = (122, 72, 162)         # purple blast cytoplasm
_NUCLEUS = (88, 40, 128)        # darker purple nucleus
_NOISE_SIGMA = 4.0
# Blast and nucleus colours per class when ``class_cue`` is on (purple as without it, blue,
# magenta, olive).
_CUE_COLOURS = ((_BLAST, _NUCLEUS), ((70, 96, 178), (40, 60, 140)),
                ((176, 70, 120), (130, 40, 90)), ((110, 130, 70), (70, 90, 40)))


def write_taleqani(root: Path, *, per_class: int = 6, size: int = 96, seed: int = 0,
                   classes: tuple[str, ...] = TALEQANI_CLASSES, class_cue: bool = False) -> Path:
    """Write a fake Taleqani ALL tree under ``root`` and return ``root``.

    ``Original/<class>/<slug>_<i>.jpg`` is a noisy pink smear with pale red cells and one or
    two purple blasts; ``Segmented/<class>/<slug>_<i>.jpg`` is the same image with every
    pixel outside the blasts set to black, as in the real dataset. ``classes`` are the folder
    names (the Kaggle ones by default, ``TALEQANI_SHORT_CLASSES`` for the short variant). With
    ``class_cue`` the blasts of the i-th class get the i-th colour of ``_CUE_COLOURS``, so a
    classifier has something to learn; off, every class looks alike (the same images as
    before the option existed).
    """
    if size < MIN_SIZE:
        raise ValueError(f"size must be at least {MIN_SIZE} pixels, got {size}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    for number, class_name in enumerate(classes):
        colours = _CUE_COLOURS[number % len(_CUE_COLOURS)] if class_cue else _CUE_COLOURS[0]
        for index in range(per_class):
            original, blasts = _smear(rng, size, colours)
            segmented = np.where(blasts[..., None], original, 0).astype(np.uint8)
            name = f"{_slug(class_name)}_{index}.jpg"
            _save_jpeg(root / "Original" / class_name / name, original)
            _save_jpeg(root / "Segmented" / class_name / name, segmented)
    return root


def _slug(class_name: str) -> str:
    """``"[Malignant] early Pre-B"`` → ``"malignant_early_pre_b"``."""
    return re.sub(r"[^a-z0-9]+", "_", class_name.lower()).strip("_")


def _smear(rng: np.random.Generator, size: int,
           colours: tuple[tuple[int, int, int], tuple[int, int, int]] = (_BLAST, _NUCLEUS),
           ) -> tuple[np.ndarray, np.ndarray]:
    """One fake smear (uint8 HxWx3) and the boolean mask of its blast cells, drawn with the
    (blast, nucleus) ``colours``."""
    image = np.empty((size, size, 3), dtype=np.float64)
    image[:] = _BACKGROUND
    for _ in range(rng.integers(3, 7)):
        image[_ellipse(rng, size, radius_fraction=(0.06, 0.1))] = _RED_CELL
    blasts = np.zeros((size, size), dtype=bool)
    for _ in range(rng.integers(1, 3)):
        blast = _ellipse(rng, size, radius_fraction=(0.12, 0.2))
        image[blast] = colours[0]
        image[_shrink(blast)] = colours[1]
        blasts |= blast
    image += rng.normal(0.0, _NOISE_SIGMA, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), blasts


def _ellipse(rng: np.random.Generator, size: int, *,
             radius_fraction: tuple[float, float]) -> np.ndarray:
    """A random axis-aligned filled ellipse that stays at least 2 pixels inside the image."""
    ry, rx = rng.uniform(*radius_fraction, size=2) * size
    cy = rng.uniform(ry + 2, size - ry - 2)
    cx = rng.uniform(rx + 2, size - rx - 2)
    yy, xx = np.mgrid[:size, :size]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _shrink(region: np.ndarray) -> np.ndarray:
    """The part of ``region`` closer to its centroid than 60% of its extent (a nucleus)."""
    ys, xs = np.nonzero(region)
    cy, cx = ys.mean(), xs.mean()
    ry, rx = max(np.ptp(ys), 1) / 2 * 0.6, max(np.ptp(xs), 1) / 2 * 0.6
    yy, xx = np.mgrid[:region.shape[0], :region.shape[1]]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _save_jpeg(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="JPEG", quality=92)


def write_chestmnist(root: Path, *, per_split: tuple[int, int, int] = (40, 10, 10), size: int = 28,
                     seed: int = 0) -> Path:
    """Write a fake MedMNIST ``chestmnist.npz`` (``chestmnist_<size>.npz`` above 28 px) under
    ``root`` and return its path.

    The format is MedMNIST's: ``{train,val,test}_images`` uint8 N x size x size and
    ``{train,val,test}_labels`` uint8 N x 14 (multi-label 0/1). ``per_split`` rows per split
    cycle through ``_CHEST_ROW_KINDS`` in shuffled order, so single-label Cardiomegaly and
    Pneumothorax rows sit among rows with no finding, another finding, or several findings.
    Cardiomegaly shows a large bright heart, Pneumothorax one black lung edge.
    """
    if size not in CHESTMNIST_SIZES:
        raise ValueError(f"size must be one of {CHESTMNIST_SIZES} (the MedMNIST sizes), got {size}")
    if len(per_split) != len(CHESTMNIST_SPLITS) or min(per_split) < 0:
        raise ValueError(f"per_split must be {len(CHESTMNIST_SPLITS)} counts >= 0 (train, val, test), "
                         f"got {per_split}")
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in zip(CHESTMNIST_SPLITS, per_split):
        kinds = [_CHEST_ROW_KINDS[i % len(_CHEST_ROW_KINDS)] for i in range(count)]
        rng.shuffle(kinds)
        labels = np.zeros((count, CHESTMNIST_FINDINGS), np.uint8)
        for row, kind in zip(labels, kinds):
            row[_chest_findings(rng, kind)] = 1
        arrays[f"{split}_images"] = np.zeros((count, size, size), np.uint8)
        for image, row in zip(arrays[f"{split}_images"], labels):
            image[:] = _chest_xray(rng, size, cardiomegaly=bool(row[CARDIOMEGALY]),
                                   pneumothorax=bool(row[PNEUMOTHORAX]))
        arrays[f"{split}_labels"] = labels
    path = Path(root) / ("chestmnist.npz" if size == 28 else f"chestmnist_{size}.npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def _chest_findings(rng: np.random.Generator, kind: str) -> list[int]:
    """The finding indices set to 1 for a row of ``kind``."""
    others = [i for i in range(CHESTMNIST_FINDINGS) if i not in (CARDIOMEGALY, PNEUMOTHORAX)]
    if kind == "cardiomegaly":
        return [CARDIOMEGALY]
    if kind == "pneumothorax":
        return [PNEUMOTHORAX]
    if kind == "other finding":
        return [int(rng.choice(others))]
    if kind == "several findings":
        kept = [CARDIOMEGALY, PNEUMOTHORAX][int(rng.integers(2))]
        return [kept, int(rng.choice([*others, CARDIOMEGALY + PNEUMOTHORAX - kept]))]
    return []


def _chest_xray(rng: np.random.Generator, size: int, *, cardiomegaly: bool,
                pneumothorax: bool) -> np.ndarray:
    """A fake frontal chest X-ray (uint8 size x size): grey body, two dark lungs, a bright heart
    between them (large when ``cardiomegaly``), and with ``pneumothorax`` a black crescent
    along the outer edge of one lung. Positions and sizes jitter per image."""
    yy, xx = np.mgrid[:size, :size] / size
    image = 95 + 50 * yy + rng.uniform(-10, 10)
    shift = rng.uniform(-0.04, 0.04, 2)
    lung_radii = (rng.uniform(0.28, 0.34), rng.uniform(0.13, 0.17))
    for side in (-1, 1):
        lung = _region(yy, xx, (0.48 + shift[0], 0.5 + side * 0.22 + shift[1]), lung_radii)
        image[lung] = 45 + rng.uniform(-8, 8)
    if pneumothorax:
        side = 1 if rng.integers(2) else -1
        outer = _region(yy, xx, (0.46 + shift[0], 0.5 + side * 0.3 + shift[1]), (0.3, 0.09))
        image[outer] = 8
    heart_radius = rng.uniform(0.2, 0.24) if cardiomegaly else rng.uniform(0.1, 0.13)
    heart = _region(yy, xx, (0.62 + shift[0], 0.53 + shift[1]), (heart_radius * 0.85, heart_radius))
    image[heart] = (205 if cardiomegaly else 150) + rng.uniform(-10, 10)
    image += _mottle(rng, size) + rng.normal(0.0, 6.0, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _mottle(rng: np.random.Generator, size: int, *, cells: int = 9, amplitude: float = 30.0) -> np.ndarray:
    """Smooth random shading (a ``cells`` x ``cells`` grid of random offsets, bilinearly
    enlarged), so images of one class differ in their coarse look, as real patients do, and
    the near-duplicate check does not flag every pair of fakes."""
    grid = rng.uniform(-amplitude, amplitude, (cells, cells)).astype(np.float32)
    return cv2.resize(grid, (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float64)


def _region(yy: np.ndarray, xx: np.ndarray, centre: tuple[float, float],
            radii: tuple[float, float]) -> np.ndarray:
    """A filled axis-aligned ellipse on the normalised grid ``yy``, ``xx``."""
    return ((yy - centre[0]) / radii[0]) ** 2 + ((xx - centre[1]) / radii[1]) ** 2 <= 1.0


LYMPHOBLAST_FORMS = ("via", "coco")
# VIA labels as the document's annotators wrote them (seed 003, line 109), COCO category names
# in English: the reader maps both to the classes lymphoblast / non-lymphoblast.
LYMPHOBLAST_LABELS = ("limfoblas", "non-limfoblas")
LYMPHOBLAST_CATEGORIES = ("lymphoblast", "non-lymphoblast")
LYMPHOBLAST_MIN_SIZE = 48
_VIA_CLASS_ATTRIBUTE = "label"
# Per cell kind: radius range as a fraction of the image width, cytoplasm and nucleus colours.
# A lymphoblast is large with a round dark nucleus filling most of it; a non-lymphoblast is
# smaller, with a paler cytoplasm and a lighter nucleus in three lobes.
_LYMPHOBLAST_LOOK = (((0.10, 0.13), (170, 160, 215), (72, 30, 112)),
                     ((0.065, 0.085), (226, 204, 232), (150, 100, 182)))
_CELL_VERTICES = 20
_PLACEMENT_TRIES = 30


def write_lymphoblast(root: Path, *, images: int = 20, size: int = 256, seed: int = 0,
                      form: str = "via") -> Path:
    """Write fake lymphoblast smears in the layout ``prepare_lymphoblast`` reads and return ``root``.

    ``images/smear_<i>.jpg`` are ``size`` x 3/4 ``size`` pixels (the aspect of the document's
    4100x3075 images): a shaded pink background, pale red cells, and one to four white cells
    that never overlap, each a lymphoblast or a non-lymphoblast (see ``_LYMPHOBLAST_LOOK``).
    Each white cell is drawn from the very polygon that is written as its annotation, to
    ``annotations.json``: a VIA 2.x project (``form="via"``, labels "limfoblas" /
    "non-limfoblas" in the region attribute "label") or COCO instances (``form="coco"``).
    """
    if form not in LYMPHOBLAST_FORMS:
        raise ValueError(f"form must be one of {', '.join(LYMPHOBLAST_FORMS)}, got {form!r}")
    if size < LYMPHOBLAST_MIN_SIZE:
        raise ValueError(f"size must be at least {LYMPHOBLAST_MIN_SIZE} pixels, got {size}")
    if images < 1:
        raise ValueError(f"images must be at least 1, got {images}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    width, height = size, round(size * 3 / 4)
    written = []
    for index in range(images):
        image, cells = _lymphoblast_smear(rng, width, height)
        name = f"smear_{index:03d}.jpg"
        _save_jpeg(root / "images" / name, image)
        written.append((name, (root / "images" / name).stat().st_size, cells))
    document = _via_project(written) if form == "via" else _coco_instances(written, width, height)
    (root / "annotations.json").write_text(json.dumps(document, indent=1))
    return root


def _lymphoblast_smear(rng: np.random.Generator, width: int,
                       height: int) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """One fake smear (uint8 H x W x 3) and its white cells as (kind, polygon k x 2 of x, y)."""
    image = np.empty((height, width, 3), np.uint8)
    image[:] = _BACKGROUND
    for _ in range(rng.integers(4, 9)):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = tuple(int(a) for a in rng.uniform(0.04, 0.06, 2) * width)
        cv2.ellipse(image, centre, axes, 0, 0, 360, _RED_CELL, -1)
    cells: list[tuple[int, np.ndarray]] = []
    for _ in range(rng.integers(1, 5)):
        kind = int(rng.integers(2))
        placed = _place_cell(rng, width, height, rng.uniform(*_LYMPHOBLAST_LOOK[kind][0]) * width, cells)
        if placed is not None:
            polygon = _cell_polygon(rng, *placed, width, height)
            _draw_white_cell(rng, image, kind, polygon, placed)
            cells.append((kind, polygon))
    shaded = image + 0.4 * _mottle(rng, max(width, height))[:height, :width, None]
    shaded += rng.normal(0.0, _NOISE_SIGMA, shaded.shape)
    return np.clip(shaded, 0, 255).astype(np.uint8), cells


def _place_cell(rng: np.random.Generator, width: int, height: int, radius: float,
                cells: list[tuple[int, np.ndarray]]) -> tuple[float, float, float] | None:
    """(x, y, radius) of a cell inside the image clear of the ``cells`` already placed, or None
    when ``_PLACEMENT_TRIES`` random centres all collide."""
    for _ in range(_PLACEMENT_TRIES):
        x, y = rng.uniform(radius + 2, width - radius - 2), rng.uniform(radius + 2, height - radius - 2)
        clear = all(np.hypot(*(polygon.mean(axis=0) - (x, y))) > radius + np.ptp(polygon[:, 0]) / 2 + 4
                    for _, polygon in cells)
        if clear:
            return x, y, radius
    return None


def _cell_polygon(rng: np.random.Generator, x: float, y: float, radius: float,
                  width: int, height: int) -> np.ndarray:
    """A slightly irregular round outline (``_CELL_VERTICES`` integer vertices)."""
    angles = np.linspace(0, 2 * np.pi, _CELL_VERTICES, endpoint=False)
    radii = radius * rng.uniform(0.95, 1.05, _CELL_VERTICES)
    points = np.stack([x + radii * np.cos(angles), y + radii * np.sin(angles)], axis=1)
    return np.clip(np.round(points), 0, [width - 1, height - 1]).astype(np.int64)


def _draw_white_cell(rng: np.random.Generator, image: np.ndarray, kind: int, polygon: np.ndarray,
                     placed: tuple[float, float, float]) -> None:
    """Fill the cell's outline ``polygon`` (its annotation, so pixels and annotation agree)
    with cytoplasm, then draw the nucleus well inside it: one round dark nucleus (lymphoblast)
    or three pale lobes (non-lymphoblast)."""
    _, cytoplasm, nucleus = _LYMPHOBLAST_LOOK[kind]
    x, y, radius = placed
    cv2.fillPoly(image, [polygon.astype(np.int32)], cytoplasm)
    if kind == 0:
        cv2.circle(image, (round(x), round(y)), round(radius * 0.78), nucleus, -1)
        return
    start = rng.uniform(0, 2 * np.pi)
    for lobe in range(3):
        angle = start + lobe * 2 * np.pi / 3
        centre = (round(x + 0.33 * radius * np.cos(angle)), round(y + 0.33 * radius * np.sin(angle)))
        cv2.circle(image, centre, round(radius * 0.3), nucleus, -1)


def _via_project(written: list[tuple[str, int, list]]) -> dict:
    """A VIA 2.0 project (as "Save project" writes it) of polygon regions."""
    metadata = {f"{name}{nbytes}": {
        "filename": name, "size": nbytes, "file_attributes": {},
        "regions": [{"shape_attributes": {"name": "polygon", "all_points_x": polygon[:, 0].tolist(),
                                          "all_points_y": polygon[:, 1].tolist()},
                     "region_attributes": {_VIA_CLASS_ATTRIBUTE: LYMPHOBLAST_LABELS[kind]}}
                    for kind, polygon in cells]} for name, nbytes, cells in written}
    options = {label: "" for label in LYMPHOBLAST_LABELS}
    return {"_via_settings": {"project": {"name": "lymphoblast"}},
            "_via_img_metadata": metadata,
            "_via_attributes": {"region": {_VIA_CLASS_ATTRIBUTE: {"type": "dropdown", "description": "cell type",
                                                                  "options": options, "default_options": {}}},
                                "file": {}},
            "_via_image_id_list": list(metadata)}


def _coco_instances(written: list[tuple[str, int, list]], width: int, height: int) -> dict:
    """COCO instances JSON of the same polygons (categories 1 and 2)."""
    images, annotations = [], []
    for image_id, (name, _, cells) in enumerate(written, start=1):
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for kind, polygon in cells:
            (x1, y1), (x2, y2) = polygon.min(axis=0), polygon.max(axis=0)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": kind + 1,
                                "segmentation": [polygon.ravel().tolist()],
                                "bbox": [int(x1), int(y1), int(x2 - x1), int(y2 - y1)],
                                "area": float(cv2.contourArea(polygon.astype(np.float32))), "iscrowd": 0})
    categories = [{"id": kind + 1, "name": name, "supercategory": "white blood cell"}
                  for kind, name in enumerate(LYMPHOBLAST_CATEGORIES)]
    return {"info": {"description": "synthetic lymphoblast smears (medsweep)"}, "images": images,
            "annotations": annotations, "categories": categories}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.synthetic_data",
        description="Write a small fake dataset in the real on-disk layout.")
    kinds = parser.add_subparsers(dest="kind", required=True)
    taleqani = kinds.add_parser(
        "taleqani", help="Taleqani ALL: Original/<class>/*.jpg and Segmented/<class>/*.jpg",
        description="Write Original/ and Segmented/ class folders of fake blood smears.")
    taleqani.add_argument("out", type=Path, help="directory to write Original/ and Segmented/ into")
    taleqani.add_argument("--per-class", type=int, default=6, help="images per class (default 6)")
    taleqani.add_argument("--size", type=int, default=96, help="image side in pixels (default 96)")
    taleqani.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    taleqani.add_argument("--short-names", action="store_true",
                          help="name the class folders Benign, Early, Pre, Pro instead of Kaggle's names")
    taleqani.add_argument("--class-cue", action="store_true",
                          help="give each class its own blast colour, so a classifier can learn something")
    chest = kinds.add_parser(
        "chestmnist", help="MedMNIST ChestMNIST: chestmnist.npz (chestmnist_<size>.npz above 28 px)",
        description="Write a fake ChestMNIST npz in the MedMNIST format.")
    chest.add_argument("out", type=Path, help="directory to write the npz file into")
    chest.add_argument("--size", type=int, default=28, choices=CHESTMNIST_SIZES,
                       help="image side in pixels (default 28)")
    chest.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    chest.add_argument("--per-split", type=_three_counts, default=(40, 10, 10),
                       help="rows in train,val,test (default 40,10,10)")
    lymphoblast = kinds.add_parser(
        "lymphoblast", help="lymphoblast smears: images/*.jpg and annotations.json (VIA 2.x or COCO polygons)",
        description="Write fake lymphoblast / non-lymphoblast smears with polygon annotations.")
    lymphoblast.add_argument("out", type=Path, help="directory to write images/ and annotations.json into")
    lymphoblast.add_argument("--images", type=int, default=20, help="number of images (default 20)")
    lymphoblast.add_argument("--size", type=int, default=256,
                             help="image width in pixels; the height is 3/4 of it (default 256)")
    lymphoblast.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    lymphoblast.add_argument("--form", choices=LYMPHOBLAST_FORMS, default="via",
                             help="annotation format: VIA 2.x project or COCO instances (default via)")
    return parser


def _three_counts(text: str) -> tuple[int, int, int]:
    """``"40,10,10"`` → ``(40, 10, 10)``; anything else is a usage error."""
    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected three counts like 40,10,10, got {text!r}")
    return tuple(int(p) for p in parts)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.kind == "chestmnist":
        path = write_chestmnist(args.out, per_split=args.per_split, size=args.size, seed=args.seed)
        print(f"Wrote {sum(args.per_split)} ChestMNIST rows to {path}; "
              f"use --data-dir {path.parent} to sweep on them.")
        return 0
    if args.kind == "lymphoblast":
        root = write_lymphoblast(args.out, images=args.images, size=args.size, seed=args.seed, form=args.form)
        print(f"Wrote {args.images} lymphoblast smears ({args.form.upper()} annotations) to {root}; "
              f"use --data-dir {root} to sweep on them.")
        return 0
    classes = TALEQANI_SHORT_CLASSES if args.short_names else TALEQANI_CLASSES
    root = write_taleqani(args.out, per_class=args.per_class, size=args.size, seed=args.seed,
                          classes=classes, class_cue=args.class_cue)
    count = args.per_class * len(classes)
    print(f"Wrote {count} Original/Segmented pairs to {root}; "
          f"use --data-dir {root} to sweep on them.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
