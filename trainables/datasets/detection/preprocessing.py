"""The preprocessing variants an image goes through after scaling (``raw``, ``segmented``, an
optional bilateral filter first), as the lymphoblast study fed images to Mask R-CNN."""

from __future__ import annotations

import cv2
import numpy as np

PREPROCESSING_VARIANTS = ("raw", "segmented")
# The seed names a bilateral filter (abstract, lines 9 and 13) without parameters: these are
# OpenCV's documented example values (9-pixel neighbourhood, sigmas 75), which smooth the
# cytoplasm's grain while keeping cell edges.
BILATERAL_DIAMETER = 9
BILATERAL_SIGMA_COLOUR = 75
BILATERAL_SIGMA_SPACE = 75


def check_preprocessing(variant: str) -> None:
    if variant not in PREPROCESSING_VARIANTS:
        raise ValueError(f"unknown preprocessing {variant!r}; valid variants: {', '.join(PREPROCESSING_VARIANTS)}")


def preprocess(image: np.ndarray, variant: str, *, bilateral: bool = False) -> np.ndarray:
    """The RGB uint8 image as the document fed it to Mask R-CNN.

    ``raw``: the image as is. ``segmented``: see ``segment_cells``. With ``bilateral`` the
    image is first smoothed by ``cv2.bilateralFilter`` (diameter ``BILATERAL_DIAMETER``, sigmas
    ``BILATERAL_SIGMA_COLOUR`` / ``BILATERAL_SIGMA_SPACE``), and the filtered image is then the
    one segmented and kept.
    """
    check_preprocessing(variant)
    if bilateral:
        image = cv2.bilateralFilter(image, BILATERAL_DIAMETER, BILATERAL_SIGMA_COLOUR, BILATERAL_SIGMA_SPACE)
    return image if variant == "raw" else segment_cells(image)


def segment_cells(image: np.ndarray) -> np.ndarray:
    """The cells of an RGB smear on black, by the document's recipe (seed 003, line 103):
    histogram equalisation, then the green channel *of the equalised image* thresholded
    inverse-binary, used as the mask of a bitwise AND on the image.

    The equalisation is per channel (the document takes "the green channel of that
    equalisation", so the equalised image is in colour); only its green channel is used, so
    only that one is computed. The document gives no threshold value: Otsu's method picks it
    per image. Cells absorb green (stained nuclei, red cells), the plasma does not, so the
    inverse threshold keeps the cells.
    """
    green = cv2.equalizeHist(np.ascontiguousarray(image[..., 1]))
    _, mask = cv2.threshold(green, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    return cv2.bitwise_and(image, image, mask=mask)
