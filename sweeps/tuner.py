"""Build the ``ray.tune.Tuner`` of a resolved sweep: the one place Tune is configured
(scheduler, search algorithm, callbacks, storage, checkpoint keeping, failure policy)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ray import tune
from ray.tune.schedulers import ASHAScheduler

from sweeps.choices import SEARCH_ALGORITHMS
from sweeps.data import TRAINING_SPLITS, SweepData, on_variant
from sweeps.space import ResolvedSweep
from sweeps.storage import ExperimentLocation
from trainables.checkpoints import STAGING_PREFIX
from trainables.device_data import resolve_data_path, split_bytes
from trainables.engine import Monitor
from trainables.errors import SearchSpaceError
from trainables.registry import get_trainable

# Snapshot Tune's experiment state every few seconds (not Tune's adaptive >=10 s), so a killed
# driver loses at most that much bookkeeping; the state of a sweep is small.
EXPERIMENT_SNAPSHOT_SECONDS = "2"
# Ray's default output engine prints a "Configuration for experiment" box and where the results
# go at every verbosity, 0 included (``ray.tune.experimental.output.TuneTerminalReporter``); its
# legacy engine, chosen by this variable being "0" when the Tuner fits, prints nothing at 0.
NEW_OUTPUT_ENGINE = "RAY_AIR_NEW_OUTPUT"


def configure_tune_environment() -> None:
    """Tune settings read from the environment, set before any Tuner is built (unless the
    user set them)."""
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", EXPERIMENT_SNAPSHOT_SECONDS)
    # Checkpointing every epoch forces a snapshot per epoch; Tune warns when epochs are as short
    # as the smoke profile's, which is expected there and noise everywhere else.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


def quiet_tune_output(ray_table: bool) -> None:
    """Without Ray's table (verbose 0, when medsweep draws its own progress line) make Tune
    print nothing of its own: its legacy output engine (``NEW_OUTPUT_ENGINE``), which is silent
    at verbose 0 where the default engine still prints its configuration box. With the table,
    Ray's default engine as it is. Set in this process, the driver, which is where Tune prints."""
    if not ray_table:
        os.environ[NEW_OUTPUT_ENGINE] = "0"


@dataclass(frozen=True)
class RunSettings:
    """How to run a resolved sweep, as opposed to what it searches."""

    num_samples: int = 1
    max_failures: int = 3
    search: str = "grid"
    seed: int = 42
    optuna_storage: str | None = None
    callbacks: tuple = ()
    # Ray Tune's periodic status table; off when a ``progress.SweepProgress`` callback draws
    # the one-line progress instead.
    ray_table: bool = True


def wrapped_trainable(resolved: ResolvedSweep, data: SweepData):
    """The sweep's trainable with its data in the object store and its resources attached.

    Only the train and val splits travel, whatever ``data`` holds. Each node fetches the
    decoded arrays from the object store once, however many trials it runs; each trial trains
    on the data variant its config names.
    """
    entry = get_trainable(resolved.spec.trainable)
    with_data = tune.with_parameters(on_variant(entry.function), data=data.only(*TRAINING_SPLITS),
                                     monitor=Monitor(resolved.spec.metric, resolved.spec.mode))
    return tune.with_resources(with_data, {"cpu": resolved.resources.cpus, "gpu": resolved.resources.gpus})


def remove_checkpoint_staging(experiment_name: str) -> int:
    """Delete the checkpoint staging folders that trials of ``experiment_name`` left in this
    node's Ray session (a trial that Tune stops while it reports its last checkpoint is killed
    before it can delete its own; with large models each is gigabytes). Returns how many."""
    import shutil

    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    if node is None:
        return 0
    pattern = f"artifacts/*/{experiment_name}/working_dirs/*/{STAGING_PREFIX}*"
    staging = list(Path(node.get_session_dir_path()).glob(pattern))
    for folder in staging:
        shutil.rmtree(folder, ignore_errors=True)
    return len(staging)


def with_resolved_data_path(resolved: ResolvedSweep, data: SweepData, *,
                            echo: Callable[[str], None] | None = None) -> ResolvedSweep:
    """``resolved`` with its trials' ``data_path`` decided once, here in the driver before any
    trial starts (``trainables.device_data.resolve_data_path``: ``auto`` becomes ``device`` or
    ``loader``), and fixed, so every trial trains through the same path and its config records
    which. Unchanged where the trainable has no ``data_path`` (detection) or the sweep searches
    it as an axis (its values are then each trial's own). ``echo`` is told the choice and why."""
    config_class = get_trainable(resolved.spec.trainable).config_class
    defaults = {field.name: field.default for field in dataclasses.fields(config_class)}
    if "data_path" not in defaults or "data_path" in resolved.axes:
        return resolved
    augments = {config.get("augment", defaults["augment"]) for config in resolved.possible_configs()}
    choice = resolve_data_path(resolved.fixed.get("data_path", defaults["data_path"]), augments=augments,
                               needed_bytes=max(split_bytes(variant.splits["train"])
                                                for variant in data.variants.values()),
                               trials_use_gpu=resolved.resources.gpus > 0)
    if echo is not None:
        echo(f"Training data: every trial takes the {choice.path} path ({choice.reason})")
    return dataclasses.replace(resolved, fixed={**resolved.fixed, "data_path": choice.path})


def scheduler(resolved: ResolvedSweep) -> ASHAScheduler:
    """ASHA on epochs; it takes the sweep's metric and mode from the TuneConfig."""
    max_t = resolved.max_epochs
    return ASHAScheduler(time_attr="epoch", max_t=max_t, grace_period=min(resolved.asha.grace_period, max_t),
                         reduction_factor=resolved.asha.reduction_factor)


def search_space(resolved: ResolvedSweep, search: str) -> dict:
    """``grid_search`` over each axis's values for the grid; for a sampler, each axis's range
    (a Tune sampling object), or a categorical choice among its values when it has none."""
    if search == "grid":
        return resolved.param_space()
    return resolved.sampler_space()


def search_algorithm(resolved: ResolvedSweep, settings: RunSettings, study_name: str):
    """None for the grid; a seeded TPE ``OptunaSearch`` (optionally persisted) for optuna."""
    if settings.search == "grid":
        return None
    if settings.search != "optuna":
        raise ValueError(f"unknown search {settings.search!r}; valid: {', '.join(SEARCH_ALGORITHMS)}")
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    storage = optuna.storages.RDBStorage(settings.optuna_storage) if settings.optuna_storage else None
    return OptunaSearch(sampler=optuna.samplers.TPESampler(seed=settings.seed), storage=storage,
                        study_name=study_name if storage is not None else None)


def check_optuna_storage(url: str) -> None:
    """Refuse an ``--optuna-storage`` that Optuna could not open, before anything starts: not a
    database URL, a database kind SQLAlchemy does not know, or an SQLite file whose folder is
    missing or not writable (each would otherwise fail with a traceback once Ray is up)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    fix = "give a database URL such as sqlite:///optuna.db (a file in an existing folder you can write)"
    try:
        parsed = make_url(url)
        parsed.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SearchSpaceError(f"--optuna-storage {url}: not a database URL ({reason}); {fix}") from None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    folder = Path(parsed.database).expanduser().absolute().parent
    if not folder.is_dir():
        raise SearchSpaceError(f"--optuna-storage {url}: the folder {folder} of its SQLite file does not exist; "
                               f"create it, or {fix}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SearchSpaceError(f"--optuna-storage {url}: the folder {folder} of its SQLite file is not writable "
                               f"by this user; {fix}")


def run_config(resolved: ResolvedSweep, location: ExperimentLocation, settings: RunSettings) -> tune.RunConfig:
    return tune.RunConfig(
        name=location.name,
        storage_path=location.storage_path,
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=1, checkpoint_score_attribute=resolved.spec.metric,
            checkpoint_score_order=resolved.spec.mode),
        failure_config=tune.FailureConfig(max_failures=settings.max_failures),
        callbacks=list(settings.callbacks),
        verbose=1 if settings.ray_table else 0,
    )


def tune_config(resolved: ResolvedSweep, *, num_samples: int, scheduler=None, search_alg=None) -> tune.TuneConfig:
    """The sweep's metric and mode; trial folders named by trial id. A finished trial's actor
    runs the next trial asking for the same resources (``reuse_actors``): a new actor process
    would import PyTorch again, which costs a short trial more than its training (each trainable
    seeds and sets up everything it uses at its start, ``engine.start_trial``)."""
    return tune.TuneConfig(metric=resolved.spec.metric, mode=resolved.spec.mode, scheduler=scheduler,
                           search_alg=search_alg, num_samples=num_samples, reuse_actors=True,
                           trial_dirname_creator=lambda trial: trial.trial_id)


def build_tuner(resolved: ResolvedSweep, data: SweepData, location: ExperimentLocation,
                settings: RunSettings) -> tune.Tuner:
    """The sweep: its search space and search algorithm under ASHA, with ``data_path``
    decided for all its trials (``with_resolved_data_path``; a no-op when the caller did it)."""
    resolved = with_resolved_data_path(resolved, data)
    quiet_tune_output(settings.ray_table)
    return tune.Tuner(
        wrapped_trainable(resolved, data),
        param_space=search_space(resolved, settings.search),
        tune_config=tune_config(resolved, num_samples=settings.num_samples, scheduler=scheduler(resolved),
                                search_alg=search_algorithm(resolved, settings, location.name)),
        run_config=run_config(resolved, location, settings),
    )


def build_retraining_tuner(resolved: ResolvedSweep, data: SweepData, location: ExperimentLocation,
                           settings: RunSettings, configs: list[dict]) -> tune.Tuner:
    """Exactly ``configs``, each once, without a scheduler: every config trains to its last
    epoch (the analysis's retraining with seeds)."""
    from ray.tune.search import BasicVariantGenerator

    quiet_tune_output(settings.ray_table)
    return tune.Tuner(
        wrapped_trainable(resolved, data),
        param_space=param_space_covering(configs),
        tune_config=tune_config(resolved, num_samples=len(configs),
                                search_alg=BasicVariantGenerator(points_to_evaluate=list(configs))),
        run_config=run_config(resolved, location, settings),
    )


def param_space_covering(configs: list[dict]) -> dict:
    """A space holding every config as a point: keys that vary become categorical domains
    (so Tune accepts each preset point without a warning), the rest stay constants."""
    space = {}
    for key in configs[0]:
        values = [config[key] for config in configs]
        distinct = list(dict.fromkeys(json.dumps(v) for v in values))
        space[key] = values[0] if len(distinct) == 1 else tune.choice([json.loads(v) for v in distinct])
    return space


def restore_tuner(resolved: ResolvedSweep, data: SweepData, location: ExperimentLocation) -> tune.Tuner:
    """Continue an interrupted experiment: finished trials are kept, unfinished ones resume
    from their latest checkpoint, errored ones are retried from theirs. The run keeps the saved
    run's settings (Tune restores its RunConfig), its progress line or Ray's table included."""
    return tune.Tuner.restore(location.path, trainable=wrapped_trainable(resolved, data),
                              resume_unfinished=True, resume_errored=True)
