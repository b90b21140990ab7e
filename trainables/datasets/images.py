"""Image decoding that notices damage, and patch cropping."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from trainables.errors import MedsweepError


class CorruptImageError(MedsweepError, ValueError):
    """An image file that cannot be fully decoded (truncated, garbage, unreadable)."""


def decode_rgb(path: Path) -> np.ndarray:
    """Decode an image completely into an HxWx3 uint8 array.

    OpenCV returns a partly grey image for a truncated JPEG without complaint; Pillow with
    ``LOAD_TRUNCATED_IMAGES`` off raises, so a damaged file is reported instead of trained on.
    """
    try:
        with Image.open(path) as image:
            image.load()
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(f"{path}: cannot decode image ({exc})") from exc


def crop_with_padding(image: np.ndarray, box: tuple[int, int, int, int], padding: int) -> np.ndarray:
    """Crop ``box`` (xmin, ymin, xmax, ymax; pixel edges) grown by ``padding`` on every side,
    clipped to the image."""
    height, width = image.shape[:2]
    xmin, ymin, xmax, ymax = box
    x0, y0 = max(0, xmin - padding), max(0, ymin - padding)
    x1, y1 = min(width, xmax + padding), min(height, ymax + padding)
    return image[y0:y1, x0:x1]


def resize_square(patch: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize to ``size`` x ``size`` (the documents' 224x224 input, aspect not kept)."""
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_LINEAR)
