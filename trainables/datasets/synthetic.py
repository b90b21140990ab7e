"""Small fake datasets written in the real on-disk layouts.

Tests use them, and so can a researcher who wants to try medsweep before getting the real
data::

    python -m trainables.datasets.synthetic taleqani OUT [--per-class N] [--size PX] [--seed S]

The images only look vaguely like blood smears; they exist to exercise the readers, not to
train anything meaningful.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
from PIL import Image

TALEQANI_CLASSES = ("Benign", "[Malignant] early Pre-B", "[Malignant] Pre-B", "[Malignant] Pro-B")
MIN_SIZE = 24

_BACKGROUND = (240, 218, 224)   # light pink plasma
_RED_CELL = (228, 168, 176)     # pale red discs
_BLAST = (122, 72, 162)         # purple blast cytoplasm
_NUCLEUS = (88, 40, 128)        # darker purple nucleus
_NOISE_SIGMA = 4.0


def write_taleqani(root: Path, *, per_class: int = 6, size: int = 96, seed: int = 0,
                   classes: tuple[str, ...] = TALEQANI_CLASSES) -> Path:
    """Write a fake Taleqani ALL tree under ``root`` and return ``root``.

    ``Original/<class>/<slug>_<i>.jpg`` is a noisy pink smear with pale red cells and one or
    two purple blasts; ``Segmented/<class>/<slug>_<i>.jpg`` is the same image with every
    pixel outside the blasts set to black, as in the real dataset.
    """
    if size < MIN_SIZE:
        raise ValueError(f"size must be at least {MIN_SIZE} pixels, got {size}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    for class_name in classes:
        for index in range(per_class):
            original, blasts = _smear(rng, size)
            segmented = np.where(blasts[..., None], original, 0).astype(np.uint8)
            name = f"{_slug(class_name)}_{index}.jpg"
            _save_jpeg(root / "Original" / class_name / name, original)
            _save_jpeg(root / "Segmented" / class_name / name, segmented)
    return root


def _slug(class_name: str) -> str:
    """``"[Malignant] early Pre-B"`` → ``"malignant_early_pre_b"``."""
    return re.sub(r"[^a-z0-9]+", "_", class_name.lower()).strip("_")


def _smear(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One fake smear (uint8 HxWx3) and the boolean mask of its blast cells."""
    image = np.empty((size, size, 3), dtype=np.float64)
    image[:] = _BACKGROUND
    for _ in range(rng.integers(3, 7)):
        image[_ellipse(rng, size, radius_fraction=(0.06, 0.1))] = _RED_CELL
    blasts = np.zeros((size, size), dtype=bool)
    for _ in range(rng.integers(1, 3)):
        blast = _ellipse(rng, size, radius_fraction=(0.12, 0.2))
        image[blast] = _BLAST
        image[_shrink(blast)] = _NUCLEUS
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trainables.datasets.synthetic",
        description="Write a small fake dataset in the real on-disk layout.")
    kinds = parser.add_subparsers(dest="kind", required=True)
    taleqani = kinds.add_parser(
        "taleqani", help="Taleqani ALL: Original/<class>/*.jpg and Segmented/<class>/*.jpg",
        description="Write Original/ and Segmented/ class folders of fake blood smears.")
    taleqani.add_argument("out", type=Path, help="directory to write Original/ and Segmented/ into")
    taleqani.add_argument("--per-class", type=int, default=6, help="images per class (default 6)")
    taleqani.add_argument("--size", type=int, default=96, help="image side in pixels (default 96)")
    taleqani.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    root = write_taleqani(args.out, per_class=args.per_class, size=args.size, seed=args.seed)
    count = args.per_class * len(TALEQANI_CLASSES)
    print(f"Wrote {count} Original/Segmented pairs to {root}; "
          f"use --data-dir {root} to sweep on them.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
