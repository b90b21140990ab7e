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
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from ray import tune

from analysis.results import Experiment, ExperimentError, best_checkpoint, read_history
from analysis.stats import Estimate, estimate, paired_comparison, resample_weights
from analysis.winners import Candidate, Winners
from sweeps.data import SweepData, prepare_sweep_data
from sweeps.environment import DataCheck, check_data_unchanged
from sweeps.storage import ExperimentLocation
from sweeps.summary import best_of, stop_reason
from sweeps.tuner import RunSettings, build_retraining_tuner, configure_tune_environment, remove_checkpoint_staging
from trainables.checkpoints import STATE_FILE, UnsafeCheckpointError
from trainables.datasets.base import ClassificationData, SplitArrays
from trainables.metrics import metric_direction
from trainables.registry import get_trainable

CACHE_DIR = "analysis_cache"
# Part of every cache key: bump it when what is cached for a model changes.
CACHE_VERSION = 3
# The stored name of each array of an output made of named arrays.
OUTPUT_PREFIX = "outputs."
RERUN_STORAGE = "reruns"
CHECKPOINT = "sweep checkpoint"
# What a model predicts on a split: one array, or named arrays (a Mask R-CNN's boxes and masks).
Outputs = np.ndarray | Mapping[str, np.ndarray]
RETRAINED = "retrained"


@dataclass(frozen=True)
class RerunSettings:
    """How to confirm: ``seeds`` retrainings per candidate (0: checkpoints only) of every
    candidate or of the overall ``winner`` alone (``retrain``), bootstrap resamples of the
    test images, interval confidence, where the data and Ray are, and whether to go on with
    data that differs from the sweep's record (``allow_data_change``)."""

    seeds: int = 3
    retrain: str = "candidates"
    bootstrap: int = 1000
    confidence: float = 0.95
    data_dir: str | None = None
    address: str | None = None
    allow_data_change: bool = False

    @property
    def seed_values(self) -> tuple[int, ...]:
        """Retraining seeds 0..N-1: fixed, so a later report reuses the cache, and distinct
        from the sweep's own seed, so a retrain is not a replay of the sweep trial."""
        return tuple(range(self.seeds))


@dataclass(frozen=True)
class ModelPredictions:
    """One model's outputs on the test split, and what its training did (``seed`` None for
    the sweep's own checkpoint)."""

    trial_id: str
    seed: int | None
    outputs: Outputs
    training: dict

    @property
    def inference(self) -> dict:
        """Inference settings tuned on validation outputs (empty when the task has none)."""
        return dict(self.training.get("inference", {}))


@dataclass(frozen=True)
class Confirmation:
    """Everything measured on the test split for the candidates: predictions keyed by
    (trial id, ``CHECKPOINT`` or ``RETRAINED``), an estimate per metric and model kind, and
    every candidate compared with the overall winner. ``test`` is the winner's test split;
    ``tests`` maps each trial to its own where data variants differ in it. ``data_check``: how
    the data read for the confirmation compared with the sweep's record."""

    class_names: tuple[str, ...]
    test: SplitArrays
    predictions: dict[tuple[str, str], list[ModelPredictions]]
    estimates: pd.DataFrame
    comparisons: pd.DataFrame
    reference: str | None
    failures: tuple[str, ...] = field(default=())
    retrained_now: int = 0
    tests: dict[str, SplitArrays] = field(default_factory=dict)
    data_check: DataCheck | None = None

    def test_of(self, trial_id: str) -> SplitArrays:
        """The test split a trial is scored on (its data variant's; ``test`` otherwise)."""
        return self.tests.get(trial_id, self.test)

    def estimate(self, trial_id: str, metric: str, kind: str | None = None) -> Estimate | None:
        """A metric's estimate for a candidate: of ``kind``, or retrained when there are
        retrained models and the sweep checkpoint otherwise."""
        for wanted in [kind] if kind else [RETRAINED, CHECKPOINT]:
            row = self.estimates[(self.estimates["trial_id"] == trial_id) & (self.estimates["kind"] == wanted)
                                 & (self.estimates["metric"] == metric)]
            if not row.empty:
                r = row.iloc[0]
                return Estimate(mean=r["mean"], std=r["std"], low=r["low"], high=r["high"], seeds=int(r["seeds"]))
        return None


def metric_on_test(sweep_metric: str) -> str:
    """The test-split name of a validation metric (``val_macro_f1`` → ``macro_f1``)."""
    return sweep_metric.removeprefix("val_")


class PredictionCache:
    """Test-split outputs on disk, one ``.npz`` per model, keyed by what determines them. An
    output that is a mapping of named arrays (a Mask R-CNN's candidates with their masks) is
    stored as one ``outputs.<name>`` array each; nothing stored needs pickle to load."""

    def __init__(self, directory: Path, data_key: str) -> None:
        self.directory = directory
        self.data_key = data_key

    def _path(self, parts: dict) -> Path:
        digest = hashlib.sha256(json.dumps({**parts, "data": self.data_key, "version": CACHE_VERSION}, sort_keys=True,
                                           default=str).encode()).hexdigest()[:24]
        return self.directory / f"{digest}.npz"

    def load(self, parts: dict) -> tuple[Outputs, dict] | None:
        path = self._path(parts)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as stored:
                named = {key.removeprefix(OUTPUT_PREFIX): stored[key] for key in stored.files
                         if key.startswith(OUTPUT_PREFIX)}
                return (named or stored["outputs"]), json.loads(str(stored["training"]))
        except (OSError, ValueError, KeyError):
            return None

    def save(self, parts: dict, outputs: Outputs, training: dict) -> None:
        """Store one model's outputs through a temporary file of this writer's own, renamed over
        the entry when complete, so two reports writing the same entry at once never interleave
        and a reader sees a whole file or none."""
        path = self._path(parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = ({f"{OUTPUT_PREFIX}{name}": np.asarray(array) for name, array in outputs.items()}
                  if isinstance(outputs, Mapping) else {"outputs": outputs})
        descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=f"{path.stem}.", suffix=".partial")
        try:
            with os.fdopen(descriptor, "wb") as stream:
                np.savez_compressed(stream, **arrays, training=json.dumps(training, default=str))
            os.replace(partial, path)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise


@dataclass(frozen=True)
class Evaluator:
    """Runs a checkpoint on the test split, after tuning its inference settings (where the
    task has any) on the validation split, and caches what it found."""

    predict: Callable[..., Outputs]
    tune_inference: Callable[..., tuple[dict, list[dict]]] | None
    truth: Callable[..., object]
    class_names: tuple[str, ...]
    test: SplitArrays
    val: SplitArrays
    cache: PredictionCache

    def run(self, checkpoint: Path, parts: dict, training: dict) -> tuple[Outputs, dict] | str:
        """Test outputs and training record (with any tuned inference settings) of the model in
        ``checkpoint`` (``parts`` keys the cache), or why there are none."""
        cached = self.cache.load(parts)
        if cached is not None:
            return cached
        try:
            outputs = self.predict(checkpoint, self.test)
            if self.tune_inference is not None:
                settings, grid = self.tune_inference(self.truth(self.val), self.predict(checkpoint, self.val),
                                                     self.class_names)
                training = {**training, "inference": settings, "inference_grid": grid}
        except UnsafeCheckpointError:  # possibly hostile: the experiment is untrusted, the report stops
            raise
        except Exception as exc:  # a broken checkpoint is reported; the other models go on
            return f"its checkpoint {checkpoint} could not predict ({type(exc).__name__}: {exc})"
        self.cache.save(parts, outputs, training)
        return outputs, training


def confirm_on_test(experiment: Experiment, winners: Winners, settings: RerunSettings, *,
                    evaluate_all: bool = False, echo: Callable[[str], None] = print) -> Confirmation:
    """Evaluate and retrain every candidate, then estimate each metric with its interval and
    compare every candidate with the overall winner on the same resampled test images.
    ``evaluate_all`` also evaluates the sweep checkpoint of every other eligible trial (for
    studies whose document tabulates every configuration on the test split).

    Where the dataset has variants (study 5's loading options), each trial is scored on the
    test split of its own variant, and only candidates sharing the winner's test split are
    compared with it.

    The data is first compared with the sweep's record (``check_data_unchanged``): a change
    raises ``DataChangedError`` before anything is evaluated, unless
    ``settings.allow_data_change``."""
    data = prepare_sweep_data(experiment.resolved, data_dir=settings.data_dir, splits=("train", "val", "test"))
    data_check = check_data_unchanged(experiment.directory, data, allow_change=settings.allow_data_change)
    for change in data_check.changes:
        echo(f"warning: data changed since the sweep (--allow-data-change): {change}")
    evaluators = {key: variant_evaluator(experiment, variant, key, data.label(key))
                  for key, variant in data.variants.items()}
    variant_of = {trial_id: data.key_of(experiment.config(trial_id)) for trial_id in experiment.trials["trial_id"]}
    evaluated = list(winners.ranking["trial_id"]) if evaluate_all else winners.candidate_ids
    tests = {key: e.test for key, e in evaluators.items()}
    to_retrain = tuple(c for c in winners.candidates
                       if settings.retrain == "candidates" or c.trial_id == winners.overall)
    echo("Test split: " + "; ".join(f"{data.label(k)} {len(t)} samples from {len(np.unique(t.sources))} images".strip()
                                     for k, t in tests.items())
         + f"; evaluating the best sweep checkpoint of {len(evaluated)} trial(s), then {settings.seeds} "
           f"retraining(s) of each of {len(to_retrain)} candidate(s)"
         + ("" if len(to_retrain) == len(winners.candidates) else " (--retrain winner: the overall winner only)"))
    trials = experiment.trials.set_index("trial_id")
    predictions: dict[tuple[str, str], list[ModelPredictions]] = {}
    failures: list[str] = []
    for trial_id in evaluated:
        found = checkpoint_predictions(trials.loc[trial_id], evaluators[variant_of[trial_id]])
        if isinstance(found, str):
            failures.append(f"{trial_id}: {found}")
        else:
            predictions[(trial_id, CHECKPOINT)] = [found]
    retrained, retrain_failures, retrained_now = retrain_candidates(
        experiment, to_retrain, data, settings, evaluators, echo)
    predictions.update(retrained)
    failures.extend(retrain_failures)
    entry = get_trainable(experiment.spec.trainable)
    weights = {key: resample_weights(test.sources, resamples=settings.bootstrap) for key, test in tests.items()}
    truths = {key: entry.truth(test) for key, test in tests.items()}
    scores = {(trial_id, kind): [model_scores(entry.score, truths[variant_of[trial_id]], data.primary.class_names, p,
                                              weights[variant_of[trial_id]]) for p in models]
              for (trial_id, kind), models in predictions.items()}
    estimates = estimate_table(scores, settings.confidence)
    reference = winners.overall
    reference_variant = variant_of.get(reference) if reference else next(iter(tests))
    comparable = {k: v for k, v in scores.items()
                  if k[0] in winners.candidate_ids and variant_of[k[0]] == reference_variant}
    comparisons = compare_with(reference, comparable, metric_on_test(experiment.metric), experiment.mode,
                               settings.confidence)
    return Confirmation(class_names=data.primary.class_names, test=tests[reference_variant], predictions=predictions,
                        estimates=estimates, comparisons=comparisons, reference=reference, failures=tuple(failures),
                        retrained_now=retrained_now, tests={t: tests[v] for t, v in variant_of.items()},
                        data_check=data_check)


def variant_evaluator(experiment: Experiment, data: ClassificationData, key, label: str) -> Evaluator:
    """The evaluator of one data variant's test split, with its own prediction cache key."""
    test = data.splits["test"]
    if len(test) == 0:
        raise ExperimentError(f"the test split of {' '.join(filter(None, (data.name, label)))} is empty; nothing "
                              f"to confirm on (check the data audit in {experiment.directory / 'data_audit.txt'})")
    entry = get_trainable(experiment.spec.trainable)
    data_key = [data.fingerprint, experiment.resolved.to_dict()["data"]] + ([] if key is None else [key])
    cache = PredictionCache(experiment.directory / CACHE_DIR, data_key=json.dumps(data_key, default=str))
    return Evaluator(predict=entry.predict, tune_inference=entry.tune_inference, truth=entry.truth,
                     class_names=data.class_names, test=test,
                     val=data.splits["val"], cache=cache)


def checkpoint_predictions(trial: pd.Series, evaluator: Evaluator) -> ModelPredictions | str:
    """The sweep trial's best checkpoint on the test split (cached), or why there is none."""
    checkpoint = trial["best_checkpoint"]
    if not checkpoint or not Path(checkpoint, STATE_FILE).is_file():
        return f"no best checkpoint with weights to evaluate ({checkpoint or 'none kept'})"
    training = {"epochs": int(trial["epochs"]), "wall_seconds": float(trial["wall_seconds"]),
                "stop_reason": trial["stop_reason"], "best_epoch": trial["best_epoch"]}
    # Keyed on the trial's state as well as its checkpoint: a resumed trial with new results is
    # evaluated again, even where its best checkpoint stayed, so no earlier state shows through.
    parts = {"kind": CHECKPOINT, "trial": trial.name, "checkpoint": Path(checkpoint).name,
             "modified": Path(checkpoint, STATE_FILE).stat().st_mtime_ns,
             "trial_state": {**training, "status": trial["status"]}}
    found = evaluator.run(Path(checkpoint), parts, training)
    if isinstance(found, str):
        return found
    return ModelPredictions(trial_id=str(trial.name), seed=None, outputs=found[0], training=found[1])


def retrain_candidates(experiment: Experiment, candidates: tuple[Candidate, ...], data: SweepData,
                       settings: RerunSettings, evaluators: dict, echo: Callable[[str], None]):
    """Retrained test predictions per candidate, failures, and how many models were trained
    now. Candidates sharing a config (repeated grid samples) share its retrained models."""
    wanted = {(c.trial_id, seed): {**experiment.config(c.trial_id), "seed": seed}
              for c in candidates for seed in settings.seed_values}
    found: dict[tuple[str, int], ModelPredictions] = {}
    missing: dict[str, dict] = {}
    for (trial_id, seed), config in wanted.items():
        cached = evaluators[data.key_of(config)].cache.load({"kind": RETRAINED, "config": config})
        if cached is None:
            missing[config_key(config)] = config
        else:
            found[(trial_id, seed)] = ModelPredictions(trial_id, seed, cached[0], cached[1])
    failures: list[str] = []
    if missing:
        echo(f"Retraining {len(missing)} model(s) from scratch on Ray Tune ({len(wanted) - len(found)} needed, "
             f"{len(found)} cached), seeds {list(settings.seed_values)}")
        recorder = RetrainRecorder(missing, experiment=experiment, echo=echo,
                                   evaluators={key: evaluators[data.key_of(c)] for key, c in missing.items()})
        run_retraining(experiment, list(missing.values()), data, settings, recorder)
        for (trial_id, seed), config in wanted.items():
            key = config_key(config)
            if key in recorder.outputs:
                outputs, training = recorder.outputs[key]
                found[(trial_id, seed)] = ModelPredictions(trial_id, seed, outputs, training)
            elif key in missing:
                failures.append(f"{trial_id} retrained with seed {seed}: "
                                f"{recorder.failures.get(key, 'Tune never finished it')}")
    grouped: dict[tuple[str, str], list[ModelPredictions]] = {}
    for (trial_id, seed) in sorted(found):
        grouped.setdefault((trial_id, RETRAINED), []).append(found[(trial_id, seed)])
    return grouped, failures, len(missing)


def config_key(config: dict) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def run_retraining(experiment: Experiment, configs: list[dict], data: SweepData,
                   settings: RerunSettings, recorder: tune.Callback) -> None:
    """One Tune run of the sweep's trainable over exactly ``configs``, in ``<experiment>/reruns``."""
    from sweeps.progress import SweepProgress
    from sweeps.ray_session import ensure_ray

    resolved = experiment.resolved
    location = ExperimentLocation(str(experiment.directory / RERUN_STORAGE), time.strftime("rerun_%Y%m%d-%H%M%S"))
    configure_tune_environment()
    started_ray = ensure_ray(settings.address)
    progress = SweepProgress(metric=resolved.spec.metric, mode=resolved.spec.mode,
                             budget=sum(int(config.get("max_epochs", resolved.max_epochs)) for config in configs))
    try:
        build_retraining_tuner(resolved, data, location, RunSettings(callbacks=(recorder, progress), ray_table=False),
                               configs).fit()
    finally:
        remove_checkpoint_staging(location.name)
        if started_ray:
            import ray
            ray.shutdown()


class RetrainRecorder(tune.Callback):
    """Evaluates each retrained model on the test split as soon as its trial finishes and
    caches the predictions, so an interrupted confirmation keeps every finished model; prints
    one progress line per model. Results and failures are keyed by ``config_key``."""

    def __init__(self, configs: dict[str, dict], *, experiment: Experiment, evaluators: dict[str, Evaluator],
                 echo: Callable[[str], None]) -> None:
        self.configs = configs
        self.experiment = experiment
        self.evaluators = evaluators
        self.echo = echo
        self.outputs: dict[str, tuple[Outputs, dict]] = {}
        self.failures: dict[str, str] = {}
        self.started = time.perf_counter()

    def __getstate__(self) -> dict:
        """What Tune pickles of this callback (into the rerun's ``tuner.pkl``, for a restore a
        rerun never does): nothing that only this driver can use. Not ``echo``: pickling a
        builtin such as ``print`` fails whenever Ray's tqdm_ray has swapped
        ``builtins.print``, which it does the first time a worker's log reaches the driver.
        Not the evaluators either, which hold the test split."""
        return {**self.__dict__, "echo": None, "evaluators": {}}

    def _progress(self, config: dict, outcome: str) -> None:
        done = len(self.outputs) + len(self.failures)
        changed = ", ".join(f"{k}={config[k]}" for k in self.experiment.axes if k in config)
        self.echo(f"[retrain {done}/{len(self.configs)}, {time.perf_counter() - self.started:.0f} s] "
                  f"{changed}, seed {config.get('seed')}: {outcome}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        key = config_key(trial.config)
        if key not in self.configs:
            return
        # The driver writes result.json synchronously to its staging copy; storage may lag.
        history = read_history(Path(trial.local_path)) if trial.local_path else read_history(Path(trial.path))
        last = history.iloc[-1].to_dict() if not history.empty else (trial.last_result or {})
        reason = stop_reason(last, None)
        checkpoint = best_checkpoint(Path(trial.path), self.experiment.mode)
        if checkpoint is None:
            self._fail(key, f"{reason}, no checkpoint with a finite {self.experiment.metric} to evaluate")
            return
        training = {"epochs": int(last.get("epoch", 0) or 0), "stop_reason": reason, "path": str(trial.path),
                    "wall_seconds": float(history["time_this_iter_s"].sum()) if "time_this_iter_s" in history else 0.0}
        for column in dict.fromkeys((self.experiment.metric, "val_accuracy")):
            if column in history:
                training[f"best_{column}"] = best_of(history[column], self.experiment.mode
                                                     if column == self.experiment.metric else metric_direction(column))
        found = self.evaluators[key].run(checkpoint, {"kind": RETRAINED, "config": self.configs[key]}, training)
        if isinstance(found, str):
            self._fail(key, found)
            return
        self.outputs[key] = found
        value = training.get(f"best_{self.experiment.metric}", float("nan"))
        self._progress(self.configs[key], f"{reason} after {training['epochs']} epoch(s), best "
                                          f"{self.experiment.metric} {value:.4f}; test predictions cached")

    def on_trial_error(self, iteration, trials, trial, **info):
        key = config_key(trial.config)
        if key in self.configs:
            self._fail(key, f"errored (see {Path(trial.path) / 'error.txt'})")

    def _fail(self, key: str, reason: str) -> None:
        self.failures[key] = reason
        self._progress(self.configs[key], reason)


def model_scores(score, truth, class_names: tuple[str, ...], model: ModelPredictions,
                 weights: np.ndarray) -> dict[str, tuple[float, np.ndarray]]:
    """Each metric's point value and its values on the resamples, with the model's tuned
    inference settings."""
    point = score(truth, model.outputs, class_names, **model.inference)
    resampled = score(truth, model.outputs, class_names, weights, **model.inference)
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
    """Every candidate against ``reference`` on ``metric``: their retrained models when both
    have them, else their sweep checkpoints (``kind`` says which)."""
    columns = ["trial_id", "kind", "metric", "difference", "low", "high", "verdict"]
    rows = []
    candidates = sorted({trial_id for trial_id, _ in scores} - {reference}) if reference else []
    for trial_id in candidates:
        kind = next((k for k in (RETRAINED, CHECKPOINT) if (trial_id, k) in scores and (reference, k) in scores), None)
        if kind is None:
            continue
        models, ref = scores[(trial_id, kind)], scores[(reference, kind)]
        comparison = paired_comparison(
            np.stack([m[metric][1] for m in models]), np.stack([m[metric][1] for m in ref]),
            candidate_point=float(np.mean([m[metric][0] for m in models])),
            reference_point=float(np.mean([m[metric][0] for m in ref])), mode=mode, confidence=confidence)
        rows.append({"trial_id": trial_id, "kind": kind, "metric": metric, "difference": comparison.difference,
                     "low": comparison.low, "high": comparison.high, "verdict": comparison.verdict})
    return pd.DataFrame(rows, columns=columns)
