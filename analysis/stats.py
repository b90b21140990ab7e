"""Bootstrap statistics over test images: confidence intervals of a metric averaged over
seeds, and paired comparisons of two models on the same resampled images.

Resampling draws whole source images with replacement (a BCCD test image contributes all of
its cell patches together), because patches of one image are not independent. A resample is a
vector of multiplicities, one per sample, so every model is scored on exactly the same
resampled images by the metric functions of ``trainables.metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainables.metrics import nan_mean

# The verdict of a comparison on a metric that is undefined for either model.
NOT_COMPARABLE = "not comparable"


def resample_weights(groups: np.ndarray, *, resamples: int, seed: int = 0) -> np.ndarray:
    """A (resamples x n) matrix: how often each sample occurs when its groups (source
    images) are drawn with replacement, as many groups as there are."""
    groups = np.asarray(groups)
    unique, index = np.unique(groups, return_inverse=True)
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, len(unique), size=(resamples, len(unique)))
    group_counts = np.zeros((resamples, len(unique)))
    np.add.at(group_counts, (np.arange(resamples)[:, None], drawn), 1.0)
    return group_counts[:, index]


def percentile_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The central ``confidence`` interval of bootstrap values (nan resamples ignored)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def seed_average(per_resample: np.ndarray) -> np.ndarray:
    """Mean over seeds (axis 0) of each resample's values, ignoring nan (a resample in which
    a metric is undefined, such as an AUC without positives); nan where every seed is nan."""
    return nan_mean(per_resample, axis=0)


@dataclass(frozen=True)
class Estimate:
    """A metric of one model configuration on the test split: mean and standard deviation
    over seeds, and the bootstrap interval of the seed-averaged value."""

    mean: float
    std: float
    low: float
    high: float
    seeds: int

    def format(self, digits: int = 3) -> str:
        """``0.812 ± 0.010 [0.780, 0.840]``; an interval that no resample defined reads so."""
        spread = f" ± {self.std:.{digits}f}" if self.seeds > 1 else ""
        interval = (f"[{self.low:.{digits}f}, {self.high:.{digits}f}]" if np.isfinite([self.low, self.high]).all()
                    else "[no interval: undefined on every resample]")
        return f"{self.mean:.{digits}f}{spread} {interval}"


@dataclass(frozen=True)
class Undefined:
    """A metric that has no value on a split, and why ("no Pneumothorax positives in test"):
    shown in place of a number, so a report never prints ``nan`` or compares on it."""

    reason: str

    def format(self, digits: int = 3) -> str:
        return f"undefined: {self.reason}"


def estimate(per_seed: np.ndarray, per_resample: np.ndarray, confidence: float = 0.95) -> Estimate:
    """``per_seed`` (S,) point values; ``per_resample`` (S x B) values on the resamples."""
    per_seed = np.asarray(per_seed, dtype=np.float64)
    low, high = percentile_interval(seed_average(per_resample), confidence)
    std = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0
    return Estimate(mean=float(np.mean(per_seed)), std=std, low=low, high=high, seeds=len(per_seed))


@dataclass(frozen=True)
class Comparison:
    """Candidate minus reference on the same resampled test images, for a metric whose
    better direction is ``mode``."""

    difference: float
    low: float
    high: float
    mode: str = "max"

    @property
    def verdict(self) -> str:
        """``NOT_COMPARABLE`` when the difference or its interval is undefined (the metric has
        no value for one of the two on these test images), 'tied' when the interval holds 0,
        else whether the candidate is better or worse."""
        if not np.isfinite([self.difference, self.low, self.high]).all():
            return NOT_COMPARABLE
        if self.low <= 0 <= self.high:
            return "tied"
        higher = self.low > 0
        return "better" if higher == (self.mode == "max") else "worse"


def paired_comparison(candidate: np.ndarray, reference: np.ndarray, *, candidate_point: float,
                      reference_point: float, mode: str = "max", confidence: float = 0.95) -> Comparison:
    """Compare seed-averaged values (S x B each, on the same resamples)."""
    difference = seed_average(candidate) - seed_average(reference)
    low, high = percentile_interval(difference, confidence)
    return Comparison(difference=candidate_point - reference_point, low=low, high=high, mode=mode)
