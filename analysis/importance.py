"""How much each search axis explains of a sweep's metric: an in-memory Optuna study built from
the experiment's trials (grid, random or TPE alike), scored by Optuna's fANOVA importance
evaluator.

Each trial enters with its best value of the sweep's metric over the epochs it ran, so a trial
ASHA stopped counts at the budget it got. Only trials that ended on their own or by ASHA count
as finished: a diverged, errored, interrupted or never-started trial has no comparable value.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from analysis.results import Experiment
from sweeps.summary import STOPPED_BY_ASHA
from trainables.engine import STOP_COMPLETED, STOP_EARLY

FINISHED_REASONS = (STOP_COMPLETED, STOP_EARLY, STOPPED_BY_ASHA)
# A positive numeric axis whose values span at least this factor is read as log-scaled (lr).
LOG_SPAN = 10.0
# Types Optuna's categorical distribution takes as choices; other values become their text.
CATEGORICAL_TYPES = (type(None), bool, int, float, str)


@dataclass(frozen=True)
class SearchAxis:
    """One search axis as Optuna sees it: its name and distribution."""

    name: str
    distribution: BaseDistribution

    @property
    def categorical(self) -> bool:
        return isinstance(self.distribution, CategoricalDistribution)

    @property
    def log(self) -> bool:
        """Whether the axis is searched (and drawn) on a log scale."""
        return bool(getattr(self.distribution, "log", False))

    @property
    def choices(self) -> list:
        """A categorical axis's values in display order (False before True, numbers before text)."""
        return sorted(self.distribution.choices, key=display_order) if self.categorical else []


@dataclass(frozen=True)
class Importance:
    """The finished trials, every search axis, which of them varied among those trials, and each
    varying axis's share of the metric's variance (summing to 1); ``skipped`` says why there is
    no importance (or no figure at all, when fewer than two trials finished)."""

    trials: pd.DataFrame
    axes: tuple[SearchAxis, ...]
    varying: tuple[SearchAxis, ...]
    importances: dict[str, float]
    skipped: str = ""

    @property
    def constant(self) -> list[str]:
        """Axes every finished trial shares one value of: they explain nothing."""
        varying = {axis.name for axis in self.varying}
        return [axis.name for axis in self.axes if axis.name not in varying]

    @property
    def drawable(self) -> bool:
        """Whether there are trials and axes to draw (two finished trials, one varying axis)."""
        return len(self.trials) >= 2 and bool(self.varying)


def display_order(value) -> tuple:
    """Sort key putting booleans and numbers in numeric order before any text."""
    if isinstance(value, (bool, int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def categorical_value(value):
    """``value`` as Optuna accepts a categorical choice (a list or dict becomes its text)."""
    return value if isinstance(value, CATEGORICAL_TYPES) else str(value)


def is_number(value) -> bool:
    """A finite int or float that is not a boolean."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def axis_distribution(values: Sequence) -> BaseDistribution:
    """The distribution of an axis that took ``values``: numbers are an int or float range (log
    when positive and spanning at least ``LOG_SPAN``), anything else (booleans, text) categorical."""
    if values and all(is_number(v) for v in values):
        low, high = min(values), max(values)
        log = low > 0 and high / low >= LOG_SPAN
        if all(isinstance(v, int) for v in values):
            return IntDistribution(int(low), int(high), log=log)
        return FloatDistribution(float(low), float(high), log=log)
    return CategoricalDistribution(sorted(dict.fromkeys(categorical_value(v) for v in values), key=display_order))


def finished_trials(experiment: Experiment) -> pd.DataFrame:
    """Trials that ended on their own or by ASHA with a finite best value of the sweep's metric."""
    trials, column = experiment.trials, f"best_{experiment.metric}"
    if trials.empty or column not in trials:
        return trials.iloc[0:0]
    values = pd.to_numeric(trials[column], errors="coerce").to_numpy(dtype=float)
    return trials[trials["stop_reason"].isin(FINISHED_REASONS).to_numpy() & np.isfinite(values)]


def trial_values(experiment: Experiment, trials: pd.DataFrame, axis: str) -> list:
    """The value each trial of ``trials`` had on ``axis``, as its config holds it."""
    return [experiment.config(trial_id).get(axis) for trial_id in trials["trial_id"]]


def search_axes(experiment: Experiment, trials: pd.DataFrame) -> tuple[SearchAxis, ...]:
    """Every axis of the sweep, its distribution spanning the values it was searched over (a
    grid's list) and those ``trials`` took."""
    axes = []
    for name in experiment.axes:
        searched = experiment.resolved.grid.get(name)
        declared = experiment.resolved.ranges.get(name)
        values = [*(searched if isinstance(searched, list) else []), *(declared.bounds if declared else ()),
                  *trial_values(experiment, trials, name)]
        axes.append(SearchAxis(name, axis_distribution(values)))
    return tuple(axes)


def param_value(axis: SearchAxis, value):
    """A trial's value on ``axis`` as the axis's distribution holds it."""
    if axis.categorical:
        return categorical_value(value)
    return int(value) if isinstance(axis.distribution, IntDistribution) else float(value)


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's log kept to warnings while building an in-memory study (it logs every study)."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def study_of(experiment: Experiment, trials: pd.DataFrame, axes: Sequence[SearchAxis]) -> optuna.Study:
    """An in-memory study holding ``trials`` as complete trials, valued by their best metric, in
    the sweep's direction."""
    column = f"best_{experiment.metric}"
    with quiet_optuna():
        study = optuna.create_study(direction="maximize" if experiment.mode == "max" else "minimize")
    distributions = {axis.name: axis.distribution for axis in axes}
    study.add_trials([
        optuna.trial.create_trial(
            params={axis.name: param_value(axis, experiment.config(row["trial_id"]).get(axis.name)) for axis in axes},
            distributions=distributions, value=float(row[column]))
        for _, row in trials.iterrows()])
    return study


def varying_axes(experiment: Experiment, trials: pd.DataFrame,
                 axes: Sequence[SearchAxis]) -> tuple[SearchAxis, ...]:
    """The axes on which ``trials`` took more than one value."""
    return tuple(axis for axis in axes
                 if len({repr(param_value(axis, v)) for v in trial_values(experiment, trials, axis.name)}) > 1)


def parameter_importance(experiment: Experiment, *, seed: int = 0) -> Importance:
    """fANOVA importance of each varying axis for the sweep's metric over the finished trials,
    normalised to sum to 1; skipped, with the reason, when it cannot say anything."""
    trials = finished_trials(experiment)
    axes = search_axes(experiment, trials)
    varying = varying_axes(experiment, trials, axes)
    metric = experiment.metric
    skipped = ""
    if len(trials) < 2:
        skipped = (f"only {len(trials)} trial(s) finished with a finite {metric}, and importance compares "
                   f"finished trials")
    elif not varying:
        skipped = "no search axis took more than one value among the finished trials"
    elif pd.to_numeric(trials[f"best_{metric}"]).nunique() < 2:
        skipped = f"every finished trial reached the same best {metric}, so there is no variation to explain"
    if skipped:
        return Importance(trials=trials, axes=axes, varying=varying, importances={}, skipped=skipped)
    study = study_of(experiment, trials, axes)
    importances = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed),
        params=[axis.name for axis in varying])
    return Importance(trials=trials, axes=axes, varying=varying,
                      importances={name: float(share) for name, share in importances.items()})
