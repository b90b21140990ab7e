"""Build the ``ray.tune.Tuner`` of a resolved sweep: the one place Tune is configured."""

from __future__ import annotations

from pathlib import Path

from ray import tune
from ray.tune.schedulers import ASHAScheduler

from sweeps.space import ResolvedSweep
from trainables.classification import Monitor
from trainables.datasets.base import ClassificationData
from trainables.registry import get_trainable


def wrapped_trainable(resolved: ResolvedSweep, data: ClassificationData):
    """The sweep's trainable with its data in the object store and its resources attached.

    Only the train and val splits travel: the test split is for the analysis reruns.
    """
    entry = get_trainable(resolved.spec.trainable)
    with_data = tune.with_parameters(entry.function, data=data.only("train", "val"),
                                     monitor=Monitor(resolved.spec.metric, resolved.spec.mode))
    return tune.with_resources(with_data, {"cpu": resolved.resources.cpus, "gpu": resolved.resources.gpus})


def scheduler(resolved: ResolvedSweep) -> ASHAScheduler:
    """ASHA on epochs; it takes the sweep's metric and mode from the TuneConfig."""
    max_t = resolved.max_epochs
    return ASHAScheduler(time_attr="epoch", max_t=max_t, grace_period=min(resolved.asha.grace_period, max_t),
                         reduction_factor=resolved.asha.reduction_factor)


def run_config(resolved: ResolvedSweep, experiment_dir: Path) -> tune.RunConfig:
    return tune.RunConfig(
        name=experiment_dir.name,
        storage_path=str(experiment_dir.parent.resolve()),
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=1, checkpoint_score_attribute=resolved.spec.metric,
            checkpoint_score_order=resolved.spec.mode),
        failure_config=tune.FailureConfig(max_failures=0),
        verbose=1,
    )


def build_tuner(resolved: ResolvedSweep, data: ClassificationData, experiment_dir: Path,
                *, num_samples: int = 1) -> tune.Tuner:
    return tune.Tuner(
        wrapped_trainable(resolved, data),
        param_space=resolved.param_space(),
        tune_config=tune.TuneConfig(metric=resolved.spec.metric, mode=resolved.spec.mode,
                                    scheduler=scheduler(resolved), num_samples=num_samples,
                                    trial_dirname_creator=lambda trial: trial.trial_id),
        run_config=run_config(resolved, experiment_dir),
    )


def restore_tuner(resolved: ResolvedSweep, data: ClassificationData, experiment_dir: Path) -> tune.Tuner:
    """Continue an interrupted experiment; finished trials are kept, unfinished ones resume
    from their last checkpoint."""
    return tune.Tuner.restore(str(experiment_dir.resolve()), trainable=wrapped_trainable(resolved, data),
                              resume_unfinished=True, resume_errored=False)
