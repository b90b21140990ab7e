"""Image decoding and patch cropping."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.conftest import write_jpeg
from trainables.datasets.images import CorruptImageError, crop_with_padding, decode_rgb, resize_square


def test_crop_adds_padding_on_every_side():
    image = np.arange(100 * 80 * 3, dtype=np.uint8).reshape(80, 100, 3)
    patch = crop_with_padding(image, (30, 20, 50, 40), padding=10)
    assert patch.shape == (40, 40, 3)
    assert np.array_equal(patch, image[10:50, 20:60])


def test_crop_padding_is_clipped_to_the_image():
    image = np.zeros((80, 100, 3), np.uint8)
    assert crop_with_padding(image, (2, 3, 20, 30), padding=10).shape == (40, 30, 3)
    assert crop_with_padding(image, (90, 70, 100, 80), padding=10).shape == (20, 20, 3)


def test_resize_square_is_bilinear_to_the_requested_size():
    patch = np.full((30, 50, 3), 7, np.uint8)
    assert resize_square(patch, 24).shape == (24, 24, 3)
    assert (resize_square(patch, 24) == 7).all()


def test_truncated_jpeg_raises_where_opencv_decodes_silently(tmp_path):
    path = tmp_path / "x.jpg"
    write_jpeg(path, size=(200, 150))
    path.write_bytes(path.read_bytes()[:1500])
    assert cv2.imread(str(path)) is not None
    with pytest.raises(CorruptImageError, match="x.jpg"):
        decode_rgb(path)
