"""Geometry of images and their instances: scaling images and polygon vertices, rasterising
polygons, boxes and COCO RLE masks, the box around a mask, and flipping an image with its
boxes and masks in step."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np

FLIP_MODES = ("none", "x", "y", "xy")


def scaled_size(width: int, height: int, image_size: int) -> tuple[int, int]:
    """(width, height) with the longer side ``image_size`` and the aspect kept."""
    scale = image_size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def scale_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to ``size`` (width, height): area averaging to shrink, bilinear to enlarge."""
    height, width = image.shape[:2]
    if (width, height) == size:
        return image
    shrinking = size[0] * size[1] < width * height
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def scale_points(points: np.ndarray, factors: tuple[float, float]) -> np.ndarray:
    """Pixel positions (k x 2, x and y) mapped to the scaled image, pixel centre to centre."""
    return (np.asarray(points, np.float64) + 0.5) * np.asarray(factors) - 0.5


def polygon_mask(polygons: Iterable[np.ndarray], height: int, width: int) -> np.ndarray:
    """uint8 {0,1} H x W mask of every pixel the polygons (each k x 2 pixel positions x, y)
    touch, clipped to the image. Several polygons are one object in parts, so their union."""
    mask = np.zeros((height, width), np.uint8)
    for polygon in polygons:
        cv2.fillPoly(mask, [np.floor(np.asarray(polygon) + 0.5).astype(np.int32)], 1)
    return mask


def box_mask(box: Sequence[float], height: int, width: int) -> np.ndarray:
    """uint8 {0,1} H x W mask of the pixels inside ``box`` (x1, y1, x2, y2 pixel edges),
    rounded to whole pixels and at least one pixel wide and high, clipped to the image."""
    x1, y1, x2, y2 = (int(np.floor(v + 0.5)) for v in box)
    x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
    mask = np.zeros((height, width), np.uint8)
    mask[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = 1
    return mask


def mask_box(mask: np.ndarray) -> np.ndarray:
    """float32 (x1, y1, x2, y2): the pixel edges around the mask's pixels (it must have some)."""
    columns = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    return np.array([columns[0], rows[0], columns[-1] + 1, rows[-1] + 1], np.float32)


def flip_sample(image: np.ndarray, boxes: np.ndarray, masks: np.ndarray | None,
                mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The image, its boxes (n x 4 pixel edges) and masks (n x H x W, or None) flipped in step.

    ``mode`` follows the document's "pencerminan pada sumbu x, sumbu y, dan kedua sumbu x-y"
    (seed 003, line 111): ``"x"`` mirrors the x coordinates (left-right), ``"y"`` the y
    coordinates (top-bottom), ``"xy"`` both, ``"none"`` nothing. Boxes stay ordered
    (x1 < x2, y1 < y2). Polygons need no flipping of their own: their masks are flipped.

    A flipped mask is the exact mirror of the instance's pixels. Re-drawing the mirrored
    polygon (x → W-1-x) gives the same mask where edges are axis-parallel, and may differ by a
    pixel along slanted edges, because ``cv2.fillPoly`` rounds those asymmetrically.
    """
    if mode not in FLIP_MODES:
        raise ValueError(f"unknown flip mode {mode!r}; valid modes: {', '.join(FLIP_MODES)}")
    height, width = image.shape[:2]
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
    if "x" in mode:
        image = image[:, ::-1]
        boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
        masks = None if masks is None else masks[:, :, ::-1]
    if "y" in mode:
        image = image[::-1]
        boxes[:, [1, 3]] = height - boxes[:, [3, 1]]
        masks = None if masks is None else masks[:, ::-1]
    return np.ascontiguousarray(image), boxes, None if masks is None else np.ascontiguousarray(masks)

def rle_module():
    """``pycocotools.mask``, or None when pycocotools is not installed."""
    try:
        from pycocotools import mask
    except ImportError:
        return None
    return mask

def decode_rle(rle: dict) -> np.ndarray:
    """The uint8 {0,1} H x W mask of a COCO RLE (compressed or not), by pycocotools."""
    mask = rle_module()
    height, width = rle["size"]
    encoded = mask.frPyObjects(rle, height, width) if isinstance(rle["counts"], list) else rle
    return np.ascontiguousarray(mask.decode(encoded), dtype=np.uint8)
