"""Pick the winners of a sweep by its own metric: overall, per compared group, and the top-k
candidates that the test-split confirmation retrains."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.results import FAILED_REASONS, NOT_STARTED, Experiment, plain


@dataclass(frozen=True)
class Candidate:
    """A trial chosen for confirmation, and why (``roles``: "winner", "top 2", a group label)."""

    trial_id: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class Winners:
    ranking: pd.DataFrame
    overall: str | None
    per_group: dict[tuple, str]
    candidates: tuple[Candidate, ...]
    group_by: tuple[str, ...]

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
    eligible = trials[~trials["stop_reason"].isin((*FAILED_REASONS, NOT_STARTED))]
    values = pd.to_numeric(eligible[column], errors="coerce").to_numpy(dtype=float)
    eligible = eligible.loc[np.isfinite(values)]
    score = -eligible[column] if mode == "max" else eligible[column]
    return (eligible.assign(_score=score)
            .sort_values(["_score", "epochs", "trial_id"], kind="stable")
            .drop(columns="_score").reset_index(drop=True))


def group_key(row: pd.Series | dict, group_by: tuple[str, ...]) -> tuple:
    return tuple(plain(row[f"config/{axis}"]) for axis in group_by)


def pick_winners(experiment: Experiment, *, top_k: int = 3) -> Winners:
    """The best trial overall and per group (the registry's ``group_by`` axes), and the top
    ``top_k`` overall; every group winner and top-k trial becomes a candidate."""
    group_by = tuple(experiment.spec.group_by)
    ranking = rank_trials(experiment.trials, metric=experiment.metric, mode=experiment.mode)
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
    return Winners(ranking=ranking, overall=order[0] if order else None, per_group=per_group,
                   candidates=candidates, group_by=group_by)


def format_group(group_by: tuple[str, ...], key: tuple) -> str:
    return ", ".join(f"{axis}={value}" for axis, value in zip(group_by, key))
