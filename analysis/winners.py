"""Pick the winners of a sweep by its own metric: overall, per compared group, and the top-k
candidates that the test-split confirmation retrains. Where that metric is undefined on the
validation split for every trial that may win, ``FALLBACK_METRIC`` decides, and ``Winners``
says so."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.results import FAILED_REASONS, NOT_STARTED, Experiment, plain

# What ranks the trials when none that may win has a finite value of the sweep's metric (it is
# undefined on the validation split, as an AUC of a class that split lacks is): the validation
# loss, which every trainable reports, defined on any non-empty split, and what training lowers.
FALLBACK_METRIC, FALLBACK_MODE = "val_loss", "min"


@dataclass(frozen=True)
class Candidate:
    """A trial chosen for confirmation, and why (``roles``: "winner", "top 2", a group label)."""

    trial_id: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class Winners:
    """The ranking, the winners and candidates, and the metric that ranked them
    (``decided_by``): the sweep's own, or ``FALLBACK_METRIC`` with ``fallback`` saying why."""

    ranking: pd.DataFrame
    overall: str | None
    per_group: dict[tuple, str]
    candidates: tuple[Candidate, ...]
    group_by: tuple[str, ...]
    decided_by: str = ""
    fallback: str = ""
    unranked: tuple[str, ...] = ()

    @property
    def candidate_ids(self) -> list[str]:
        return [c.trial_id for c in self.candidates]


def rank_trials(trials: pd.DataFrame, *, metric: str, mode: str) -> pd.DataFrame:
    """Trials that may win, best first: diverged, errored and never-started trials, and those
    without a finite value of the metric, are left out. Ties keep the cheaper trial (fewer
    epochs), then the earlier trial id, so the order is deterministic."""
    column = f"best_{metric}"
    if trials.empty or column not in trials:
        return trials.iloc[0:0]
    eligible = trials_that_ran(trials)
    values = pd.to_numeric(eligible[column], errors="coerce").to_numpy(dtype=float)
    eligible = eligible.loc[np.isfinite(values)]
    score = -eligible[column] if mode == "max" else eligible[column]
    return (eligible.assign(_score=score)
            .sort_values(["_score", "epochs", "trial_id"], kind="stable")
            .drop(columns="_score").reset_index(drop=True))


def trials_that_ran(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials that may win: not diverged, errored or never started."""
    if trials.empty:
        return trials
    return trials[~trials["stop_reason"].isin((*FAILED_REASONS, NOT_STARTED))]


def group_key(row: pd.Series | dict, group_by: tuple[str, ...]) -> tuple:
    return tuple(plain(row[f"config/{axis}"]) for axis in group_by)


def pick_winners(experiment: Experiment, *, top_k: int = 3) -> Winners:
    """The best trial overall and per group (the registry's ``group_by`` axes), and the top
    ``top_k`` overall; every group winner and top-k trial becomes a candidate. Trials that
    ran but have no finite value of the deciding metric are named in ``unranked``."""
    group_by = tuple(experiment.spec.group_by)
    decided_by, fallback, ranking = selection(experiment)
    roles: dict[str, list[str]] = {}
    per_group: dict[tuple, str] = {}
    for _, row in ranking.iterrows():
        key = group_key(row, group_by)
        if key not in per_group:
            per_group[key] = row["trial_id"]
    for position, trial_id in enumerate(ranking["trial_id"].head(top_k), start=1):
        roles.setdefault(trial_id, []).append("winner" if position == 1 else f"top {position}")
    for key, trial_id in per_group.items():
        if group_by:
            roles.setdefault(trial_id, []).append("best of " + format_group(group_by, key))
    order = list(ranking["trial_id"])
    candidates = tuple(Candidate(trial_id=t, roles=tuple(roles[t])) for t in sorted(roles, key=order.index))
    unranked = tuple(t for t in trials_that_ran(experiment.trials).get("trial_id", ()) if t not in order)
    return Winners(ranking=ranking, overall=order[0] if order else None, per_group=per_group,
                   candidates=candidates, group_by=group_by, decided_by=decided_by, fallback=fallback,
                   unranked=unranked)


def selection(experiment: Experiment) -> tuple[str, str, pd.DataFrame]:
    """The metric that ranks the trials, why it is not the sweep's own ("" when it is), and
    the ranking. The fallback applies only when trials that may win (not failed, started)
    exist and none has a finite value of the sweep's metric, so a sweep whose trials all
    diverged still has no winner."""
    metric, trials = experiment.metric, experiment.trials
    ranking = rank_trials(trials, metric=metric, mode=experiment.mode)
    if not ranking.empty or trials.empty:
        return metric, "", ranking
    ran = trials_that_ran(trials)
    fallback = rank_trials(ran, metric=FALLBACK_METRIC, mode=FALLBACK_MODE)
    if fallback.empty:
        return metric, "", ranking
    why = (f"{metric} was undefined (no finite value) on the validation split for all {len(ran)} trial(s) that "
           f"ran, so the trials were ranked on {FALLBACK_METRIC} ({FALLBACK_MODE}) instead")
    return FALLBACK_METRIC, why, fallback


def format_group(group_by: tuple[str, ...], key: tuple) -> str:
    return ", ".join(f"{axis}={value}" for axis, value in zip(group_by, key))
