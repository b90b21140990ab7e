"""Each kornia twin against its albumentations definition: the same steps in the same order,
the same probabilities, and parameters drawn uniformly over the same ranges (on many draws)."""

from __future__ import annotations

import math

import albumentations as A
import kornia.augmentation as K
import numpy as np
import pytest
import torch
from scipy import stats

from trainables.augment import AUGMENTATIONS, build_device_augmentation

DRAWS = 4000
SIZE = 64
KS_P = 1e-4   # seeded draws: a fixed outcome, far from this when the definitions agree


def expected_steps(transform) -> list[tuple[type, float, dict]]:
    """The kornia steps an albumentations transform should become: (class, probability,
    {quantity: (low, high) range drawn uniformly, or a set of values drawn with equal chance})."""
    p = transform.p
    if isinstance(transform, A.HorizontalFlip):
        return [(K.RandomHorizontalFlip, p, {})]
    if isinstance(transform, A.VerticalFlip):
        return [(K.RandomVerticalFlip, p, {})]
    if isinstance(transform, A.Rotate):
        return [(K.RandomRotation, p, {"degrees": transform.limit})]
    if isinstance(transform, A.Affine):
        still = {"x": (0, 0), "y": (0, 0)}
        assert transform.translate_px in (None, still) and transform.shear == still
        translate = transform.translate_percent or still
        return [(K.RandomAffine, p, {"angle": transform.rotate, "scale": transform.scale["x"],
                                     "translate_x": translate["x"], "translate_y": translate["y"]})]
    if isinstance(transform, A.ColorJitter):
        return [(K.ColorJitter, p, {"brightness_factor": transform.brightness, "contrast_factor": transform.contrast,
                                    "saturation_factor": transform.saturation, "hue_factor": transform.hue})]
    if isinstance(transform, A.RandomBrightnessContrast):
        assert transform.brightness_by_max      # brightness adds limit x 255, as kornia's RandomBrightness
        low, high = transform.contrast_limit
        steps = [(K.RandomContrast, p, {"contrast_factor": (1 + low, 1 + high)})]
        low, high = transform.brightness_limit
        if (low, high) != (0, 0):
            steps.append((K.RandomBrightness, p, {"brightness_factor": (1 + low, 1 + high)}))
        return steps
    if isinstance(transform, A.GaussianBlur):
        return [(K.RandomGaussianBlur, p, {"sigma": transform.sigma_limit, "kernel": set(transform.blur_limit)})]
    if isinstance(transform, A.Erasing):
        return [(K.RandomErasing, p, {"area": transform.scale, "fill": {float(transform.fill)}})]
    if isinstance(transform, A.ImageCompression):
        return [(K.RandomJPEG, p, {"jpeg_quality": transform.quality_range})]
    if isinstance(transform, A.RandomRotate90):
        return [(K.RandomRotation90, p, {"quarter_turns": {0, 1, 2, 3}})]
    raise AssertionError(f"no kornia counterpart known for {type(transform).__name__}")


def observed(step, params: dict, quantity: str) -> np.ndarray:
    """One drawn quantity of a kornia step, on the albumentations scale."""
    if quantity == "translate_x":
        return (params["translations"][:, 0] / SIZE).numpy()
    if quantity == "translate_y":
        return (params["translations"][:, 1] / SIZE).numpy()
    if quantity == "scale":
        assert torch.equal(params["scale"][:, 0], params["scale"][:, 1])
        return params["scale"][:, 0].numpy()
    if quantity == "quarter_turns":
        return (params["times"].round() % 4).numpy()
    if quantity == "kernel":
        return np.asarray(step.flags["kernel_size"])
    if quantity == "area":
        return (params["widths"] * params["heights"] / SIZE**2).numpy()
    if quantity == "fill":
        return np.unique(params["values"].numpy())
    return params[quantity].numpy()


def draw(step) -> dict:
    torch.manual_seed(0)
    return step.forward_parameters(torch.Size((DRAWS, 3, SIZE, SIZE)))


def check_drawn(name: str, step, quantity: str, expected, values: np.ndarray) -> None:
    where = f"{name}: {type(step).__name__}.{quantity}"
    if isinstance(expected, set):
        counts = {v: int((values == v).sum()) for v in expected}
        assert set(np.unique(values)) <= expected, where
        if len(expected) > 1:
            assert stats.chisquare(list(counts.values())).pvalue > KS_P, (where, counts)
        return
    low, high = map(float, expected)
    if quantity == "area":      # kornia draws whole-pixel rectangles: the area's range, to a pixel's edge
        edge = 2 * math.sqrt(high) / SIZE
        assert low - edge <= values.min() and values.max() <= high + edge, where
        return
    if low == high:
        assert np.allclose(values, low), where
        return
    assert low - 1e-6 <= values.min() and values.max() <= high + 1e-6, where
    assert stats.kstest(values, "uniform", args=(low, high - low)).pvalue > KS_P, where


@pytest.mark.parametrize("name", sorted(n for n in AUGMENTATIONS if n != "none"))
def test_the_twin_draws_what_the_albumentations_pipeline_defines(name):
    expected = [step for transform in AUGMENTATIONS[name].cpu().transforms for step in expected_steps(transform)]
    twin = list(build_device_augmentation(name).children())
    assert [type(step) for step in twin] == [kind for kind, _, _ in expected]
    for step, (_, p, quantities) in zip(twin, expected):
        params = draw(step)
        applied = int(params["batch_prob"].sum())
        assert abs(applied - DRAWS * p) <= 4.5 * math.sqrt(DRAWS * p * (1 - p)) + 1, (name, type(step).__name__)
        for quantity, values in quantities.items():
            check_drawn(name, step, quantity, values, observed(step, params, quantity))


def test_none_has_no_twin_pipeline_and_unknown_names_list_the_valid_ones():
    assert build_device_augmentation("none") is None
    with pytest.raises(Exception, match="valid augmentations: .*bccd_light"):
        build_device_augmentation("bccd_heavy")


def test_a_mismatched_twin_is_caught():
    """The comparison itself can fail: a twin with a wider rotation is told apart."""
    wide = K.RandomRotation(20.0, p=1.0)
    with pytest.raises(AssertionError):
        check_drawn("bccd_light", wide, "degrees", A.Rotate(limit=15).limit, observed(wide, draw(wide), "degrees"))
