"""Confirm the candidates on the test split — the only code in medsweep that reads it.

For each candidate: (a) its best sweep checkpoint predicts the test split; (b) its exact config
is retrained from scratch with N seeds as one Ray Tune run of the sweep's own trainable (same
resources, same cluster, no early-stopping scheduler), and each retrained model's best
checkpoint predicts the test split. Predictions are cached in ``<experiment>/analysis_cache``
keyed by model and data, so a second report retrains and re-predicts nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from ray import tune

from analysis.results import Experiment, best_of, config_of, direction
from analysis.stats import Comparison, Estimate, estimate, paired_comparison, resample_weights
from analysis.winners import Candidate, Winners
from sweeps.data import prepare_sweep_data
from sweeps.storage import ExperimentLocation
from sweeps.summary import stop_reason
from sweeps.tuner import RunSettings, run_config, wrapped_trainable
from trainables.datasets.base import ClassificationData, SplitArrays
from trainables.registry import get_trainable

CACHE_DIR = "analysis_cache"
# Part of every cache key: bump it when what is cached for a model changes.
CACHE_VERSION = 1
RERUN_STORAGE = "reruns"
CHECKPOINT = "sweep checkpoint"
RETRAINED = "retrained"


@dataclass(frozen=True)
class RerunSettings:
    """How to confirm: ``seeds`` retrainings per candidate (0: checkpoints only), bootstrap
    resamples of the test images, interval confidence, where the data and Ray are."""

    seeds: int = 3
    bootstrap: int = 1000
    confidence: float = 0.95
    data_dir: str | None = None
    address: str | None = None

    @property
    def seed_values(self) -> tuple[int, ...]:
        """Retraining seeds 0..N-1: fixed, so a later report reuses the cache, and distinct
        from the sweep's own seed, so a retrain is not a replay of the sweep trial."""
        return tuple(range(self.seeds))


@dataclass(frozen=True)
class TestPredictions:
    """One model's outputs on the test split, and what its training did."""

    trial_id: str
    kind: str
    seed: int | None
    outputs: np.ndarray
    training: dict


@dataclass(frozen=True)
class Confirmation:
    """Everything measured on the test split for the candidates."""

    class_names: tuple[str, ...]
    test: SplitArrays
    predictions: dict[tuple[str, str], list[TestPredictions]]
    estimates: pd.DataFrame
    comparisons: pd.DataFrame
    reference: str | None
    failures: tuple[str, ...] = field(default=())
    retrained_now: int = 0

    def models(self, trial_id: str) -> list[TestPredictions]:
        """The retrained models of a candidate, or its sweep checkpoint when none retrained."""
        return self.predictions.get((trial_id, RETRAINED)) or self.predictions.get((trial_id, CHECKPOINT), [])

    def estimate(self, trial_id: str, metric: str, kind: str | None = None) -> Estimate | None:
        """A metric's estimate for a candidate (retrained when available, unless ``kind``)."""
        kinds = [kind] if kind else [RETRAINED, CHECKPOINT]
        for wanted in kinds:
            row = self.estimates[(self.estimates["trial_id"] == trial_id) & (self.estimates["kind"] == wanted)
                                 & (self.estimates["metric"] == metric)]
            if not row.empty:
                r = row.iloc[0]
                return Estimate(mean=r["mean"], std=r["std"], low=r["low"], high=r["high"], seeds=int(r["seeds"]))
        return None


def test_metric(sweep_metric: str) -> str:
    """The test-split name of a validation metric (``val_macro_f1`` → ``macro_f1``)."""
    return sweep_metric.removeprefix("val_")


class PredictionCache:
    """Test-split outputs on disk, one ``.npz`` per model, keyed by what determines them."""

    def __init__(self, directory: Path, data_key: str) -> None:
        self.directory = directory
        self.data_key = data_key

    def _path(self, parts: dict) -> Path:
        digest = hashlib.sha256(json.dumps({**parts, "data": self.data_key, "version": CACHE_VERSION}, sort_keys=True,
                                           default=str).encode()).hexdigest()[:24]
        return self.directory / f"{digest}.npz"

    def load(self, parts: dict) -> tuple[np.ndarray, dict] | None:
        path = self._path(parts)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as stored:
                return stored["outputs"], json.loads(str(stored["training"]))
        except (OSError, ValueError, KeyError):
            return None

    def save(self, parts: dict, outputs: np.ndarray, training: dict) -> None:
        path = self._path(parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.npz")
        np.savez_compressed(partial, outputs=outputs, training=json.dumps(training, default=str))
        os.replace(partial, path)


def confirm_on_test(experiment: Experiment, winners: Winners, settings: RerunSettings, *,
                    echo: Callable[[str], None] = print) -> Confirmation:
    """Evaluate and retrain every candidate, then estimate each metric with its interval and
    compare every candidate with the overall winner on the same resampled test images."""
    data, _ = prepare_sweep_data(experiment.resolved, data_dir=settings.data_dir, splits=("train", "val", "test"))
    test = data.splits["test"]
    if len(test) == 0:
        raise ValueError(f"the test split of {data.name} is empty; nothing to confirm on")
    entry = get_trainable(experiment.spec.trainable)
    cache = PredictionCache(experiment.directory / CACHE_DIR,
                            data_key=json.dumps([data.fingerprint, experiment.resolved.to_dict()["data"]]))
    trials = experiment.trials.set_index("trial_id")
    predictions: dict[tuple[str, str], list[TestPredictions]] = {}
    failures: list[str] = []
    for candidate in winners.candidates:
        found = checkpoint_predictions(trials.loc[candidate.trial_id], test, entry.predict, cache)
        if found is None:
            failures.append(f"{candidate.trial_id}: no finite best checkpoint to evaluate")
        else:
            predictions[(candidate.trial_id, CHECKPOINT)] = [found]
    retrained, retrain_failures, retrained_now = retrain_candidates(
        experiment, winners.candidates, trials, data, settings, cache, entry.predict, echo)
    predictions.update(retrained)
    failures.extend(retrain_failures)
    weights = resample_weights(test.sources, resamples=settings.bootstrap)
    scores = {key: [model_scores(entry.score, test, data.class_names, p.outputs, weights) for p in models]
              for key, models in predictions.items()}
    estimates = estimate_table(scores, settings.confidence)
    reference = winners.overall
    comparisons = compare_with(reference, scores, test_metric(experiment.metric), experiment.mode,
                               settings.confidence)
    return Confirmation(class_names=data.class_names, test=test, predictions=predictions, estimates=estimates,
                        comparisons=comparisons, reference=reference, failures=tuple(failures),
                        retrained_now=retrained_now)


def checkpoint_predictions(trial: pd.Series, test: SplitArrays, predict, cache: PredictionCache) -> TestPredictions | None:
    """The sweep trial's best checkpoint on the test split (cached)."""
    checkpoint = trial["best_checkpoint"]
    if not checkpoint:
        return None
    parts = {"kind": CHECKPOINT, "trial": trial.name, "checkpoint": Path(checkpoint).name,
             "modified": Path(checkpoint, "state.pt").stat().st_mtime_ns}
    training = {"epochs": int(trial["epochs"]), "wall_seconds": float(trial["wall_seconds"]),
                "stop_reason": trial["stop_reason"], "best_epoch": trial["best_epoch"]}
    cached = cache.load(parts)
    if cached is None:
        outputs = predict(Path(checkpoint), test)
        cache.save(parts, outputs, training)
    else:
        outputs = cached[0]
    return TestPredictions(trial_id=str(trial.name), kind=CHECKPOINT, seed=None, outputs=outputs, training=training)


def retrain_candidates(experiment: Experiment, candidates: tuple[Candidate, ...], trials: pd.DataFrame,
                       data: ClassificationData, settings: RerunSettings, cache: PredictionCache, predict,
                       echo: Callable[[str], None]):
    """Retrained test predictions per candidate, failures, and how many were trained now."""
    wanted = {(c.trial_id, seed): {**config_of(trials.loc[c.trial_id]), "seed": seed}
              for c in candidates for seed in settings.seed_values}
    found: dict[tuple[str, int], TestPredictions] = {}
    missing = {}
    for (trial_id, seed), config in wanted.items():
        cached = cache.load({"kind": RETRAINED, "config": config})
        if cached is None:
            missing[(trial_id, seed)] = config
        else:
            found[(trial_id, seed)] = TestPredictions(trial_id, RETRAINED, seed, cached[0], cached[1])
    failures: list[str] = []
    if missing:
        echo(f"Retraining {len(missing)} model(s) from scratch on Ray Tune ({len(wanted) - len(missing)} cached): "
             f"{len({t for t, _ in missing})} config(s) x seeds {sorted({s for _, s in missing})}")
        results = run_retraining(experiment, list(missing.values()), data, settings, echo)
        for key, config in missing.items():
            result = results.get(config_key(config))
            outcome = retrained_predictions(key, config, result, experiment, data.splits["test"], predict, cache)
            if isinstance(outcome, str):
                failures.append(outcome)
            else:
                found[key] = outcome
    grouped: dict[tuple[str, str], list[TestPredictions]] = {}
    for (trial_id, seed) in sorted(found):
        grouped.setdefault((trial_id, RETRAINED), []).append(found[(trial_id, seed)])
    return grouped, failures, len(missing)


def config_key(config: dict) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def run_retraining(experiment: Experiment, configs: list[dict], data: ClassificationData,
                   settings: RerunSettings, echo: Callable[[str], None]) -> dict[str, object]:
    """One Tune run of the sweep's trainable over exactly ``configs``; results by config."""
    from ray.tune.search import BasicVariantGenerator

    from sweeps.run import ensure_ray

    resolved = experiment.resolved
    location = ExperimentLocation(str(experiment.directory / RERUN_STORAGE), time.strftime("rerun_%Y%m%d-%H%M%S"))
    started_ray = ensure_ray(settings.address)
    try:
        tuner = tune.Tuner(
            wrapped_trainable(resolved, data),
            param_space=param_space_covering(configs),
            tune_config=tune.TuneConfig(metric=resolved.spec.metric, mode=resolved.spec.mode,
                                        search_alg=BasicVariantGenerator(points_to_evaluate=list(configs)),
                                        num_samples=len(configs),
                                        trial_dirname_creator=lambda trial: trial.trial_id),
            run_config=run_config(resolved, location, RunSettings(callbacks=(RerunProgress(len(configs), echo),))))
        grid = tuner.fit()
    finally:
        if started_ray:
            import ray
            ray.shutdown()
    return {config_key(result.config): result for result in grid}


def param_space_covering(configs: list[dict]) -> dict:
    """A space holding every config as a point: keys that vary become categorical domains
    (so Tune accepts each preset point without a warning), the rest stay constants."""
    space = {}
    for key in configs[0]:
        values = [config[key] for config in configs]
        distinct = list(dict.fromkeys(json.dumps(v) for v in values))
        space[key] = values[0] if len(distinct) == 1 else tune.choice([json.loads(v) for v in distinct])
    return space


def retrained_predictions(key: tuple[str, int], config: dict, result, experiment: Experiment,
                          test: SplitArrays, predict, cache: PredictionCache) -> TestPredictions | str:
    """Test predictions of one retrained model, or a sentence saying why there are none."""
    trial_id, seed = key
    label = f"{trial_id} retrained with seed {seed}"
    if result is None:
        return f"{label}: Tune returned no result"
    history = result.metrics_dataframe
    reason = stop_reason(result.metrics or {}, result.error)
    checkpoint = result.get_best_checkpoint(experiment.metric, experiment.mode) if result.error is None else None
    if checkpoint is None:
        return f"{label}: {reason}, no checkpoint to evaluate"
    training = {"epochs": int((result.metrics or {}).get("epoch", 0)), "stop_reason": reason,
                "wall_seconds": float(history["time_this_iter_s"].sum()) if history is not None else 0.0,
                "path": result.path}
    for column in dict.fromkeys((experiment.metric, "val_accuracy")):
        if history is not None and column in history:
            training[f"best_{column}"] = best_of(history[column], experiment.mode if column == experiment.metric
                                                 else direction(column))
    with checkpoint.as_directory() as directory:
        outputs = predict(Path(directory), test)
    cache.save({"kind": RETRAINED, "config": config}, outputs, training)
    return TestPredictions(trial_id, RETRAINED, seed, outputs, training)


class RerunProgress(tune.Callback):
    """One line per finished retraining, so a long confirmation shows where it is."""

    def __init__(self, total: int, echo: Callable[[str], None]) -> None:
        self.total = total
        self.echo = echo
        self.done = 0
        self.started = time.perf_counter()

    def _line(self, trial, outcome: str) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.started
        self.echo(f"[retrain {self.done}/{self.total}, {elapsed:.0f} s] seed {trial.config.get('seed')} "
                  f"{outcome}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        last = trial.last_result or {}
        metric = next((k for k in last if k.startswith("best_val_")), None)
        value = f"{metric} {last[metric]:.4f}" if metric and isinstance(last.get(metric), float) else ""
        self._line(trial, f"finished after {last.get('epoch', '?')} epoch(s) "
                          f"({last.get('stop_reason') or 'stopped'}) {value}".rstrip())

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trial, "failed (see its error.txt; the report lists it)")


def model_scores(score, test: SplitArrays, class_names: tuple[str, ...], outputs: np.ndarray,
                 weights: np.ndarray) -> dict[str, tuple[float, np.ndarray]]:
    """Each metric's point value and its values on the resamples."""
    point = score(test.labels, outputs, class_names)
    resampled = score(test.labels, outputs, class_names, weights)
    return {name: (float(point[name]), np.asarray(resampled[name])) for name in point}


def estimate_table(scores: dict, confidence: float) -> pd.DataFrame:
    rows = []
    for (trial_id, kind), models in scores.items():
        for metric in models[0]:
            per_seed = np.array([m[metric][0] for m in models])
            per_resample = np.stack([m[metric][1] for m in models])
            e = estimate(per_seed, per_resample, confidence)
            rows.append({"trial_id": trial_id, "kind": kind, "metric": metric, "mean": e.mean, "std": e.std,
                         "low": e.low, "high": e.high, "seeds": e.seeds})
    return pd.DataFrame(rows, columns=["trial_id", "kind", "metric", "mean", "std", "low", "high", "seeds"])


def compare_with(reference: str | None, scores: dict, metric: str, mode: str, confidence: float) -> pd.DataFrame:
    """Every candidate against ``reference`` on ``metric``, retrained models when both have
    them, else sweep checkpoints; verdicts read 'better' as better for the sweep's mode."""
    rows = []
    columns = ["trial_id", "kind", "metric", "difference", "low", "high", "verdict"]
    if reference is None:
        return pd.DataFrame(rows, columns=columns)
    for kind in (RETRAINED, CHECKPOINT):
        if (reference, kind) not in scores:
            continue
        ref = scores[(reference, kind)]
        for (trial_id, other_kind), models in scores.items():
            if other_kind != kind or trial_id == reference or metric not in models[0]:
                continue
            comparison = paired_comparison(
                np.stack([m[metric][1] for m in models]), np.stack([m[metric][1] for m in ref]),
                candidate_point=float(np.mean([m[metric][0] for m in models])),
                reference_point=float(np.mean([m[metric][0] for m in ref])), confidence=confidence)
            rows.append({"trial_id": trial_id, "kind": kind, "metric": metric, "difference": comparison.difference,
                         "low": comparison.low, "high": comparison.high, "verdict": verdict(comparison, mode)})
        break
    return pd.DataFrame(rows, columns=columns)


def verdict(comparison: Comparison, mode: str) -> str:
    """'tied', or whether the candidate is better or worse than the reference."""
    if comparison.verdict == "tied" or mode == "max":
        return comparison.verdict
    return "better" if comparison.verdict == "worse" else "worse"
