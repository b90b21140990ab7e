"""The end-of-sweep table: one row per trial with its arm, status, stop reason and best metric."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from trainables.engine import STOP_COMPLETED, STOP_DIVERGED, STOP_EARLY

STOPPED_BY_ASHA = "stopped_by_asha"
ERRORED = "errored"
INTERRUPTED = "interrupted"
KNOWN_REASONS = (STOP_COMPLETED, STOP_EARLY, STOPPED_BY_ASHA, STOP_DIVERGED, ERRORED, INTERRUPTED)
# Tune's trial states once an experiment has ended normally; any other means it was cut short.
FINISHED_STATES = ("TERMINATED", "ERROR")


def stop_reason(last_result: dict, error: BaseException | None, status: str = "TERMINATED") -> str:
    """Why a trial ended: it raised; the sweep was interrupted before it finished; its own final
    report says so; or it was stopped from outside (by ASHA) before reporting an ending."""
    if error is not None:
        return ERRORED
    if status not in FINISHED_STATES:
        return INTERRUPTED
    return last_result.get("stop_reason") or STOPPED_BY_ASHA


def saved_trials(experiment_path: str) -> dict:
    """Tune's trials as last saved in the experiment directory (state and config), by trial id.

    After a Ctrl-C, Tune stops the running trials and reports them TERMINATED, but the state it
    saved at the interrupt (what ``--resume`` continues from) still says which had not finished.
    """
    from ray.tune import ExperimentAnalysis
    return {trial.trial_id: trial for trial in ExperimentAnalysis(experiment_path).trials}


def trial_rows(result_grid, *, axes: list[str], metric: str, mode: str, saved: dict | None = None) -> pd.DataFrame:
    """One row per trial of a Ray Tune ``ResultGrid``, interrupted or not yet started ones too;
    ``saved`` (see ``saved_trials``) gives each trial's state and, before it started, its config."""
    rows = []
    for result in result_grid:
        trial_id = Path(result.path).name
        trial = (saved or {}).get(trial_id)
        status = trial.status if trial is not None else ("ERROR" if result.error is not None else "TERMINATED")
        last = result.metrics or {}
        config = result.config or (trial.config if trial is not None else None) or {}
        history = result.metrics_dataframe
        reason = stop_reason(last, result.error, status)
        rows.append({
            "trial_id": last.get("trial_id") or trial_id,
            **{axis: config.get(axis) for axis in axes},
            "status": "ERROR" if result.error is not None else status,
            "stop_reason": reason,
            "epochs": int(last.get("epoch", 0) or 0),
            f"best_{metric}": best_value(history, metric, mode),
            "detail": _detail(last, result.error),
            "path": result.path,
        })
    return pd.DataFrame(rows)


def best_value(history: pd.DataFrame | None, metric: str, mode: str) -> float:
    if history is None or metric not in history:
        return math.nan
    return best_of(history[metric], mode)


def best_of(values: pd.Series, mode: str) -> float:
    """The best finite value of a series by ``mode`` (nan when there is none)."""
    numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    finite = numeric[np.isfinite(numeric)]
    if finite.size == 0:
        return math.nan
    return float(finite.max() if mode == "max" else finite.min())


def _detail(last: dict, error: BaseException | None) -> str:
    if error is not None:
        lines = [line for line in str(error).strip().splitlines() if line.strip()]
        return lines[-1][:200] if lines else type(error).__name__
    return str(last.get("divergence_reason") or "")


def format_table(rows: pd.DataFrame, metric: str) -> str:
    shown = rows.drop(columns=["path"]).copy()
    shown[f"best_{metric}"] = shown[f"best_{metric}"].map(lambda v: "" if math.isnan(v) else f"{v:.4f}")
    return shown.to_string(index=False)


def exit_code(rows: pd.DataFrame) -> int:
    """0 when every trial ended in a known state other than errored or interrupted."""
    ok = rows["stop_reason"].isin([r for r in KNOWN_REASONS if r not in (ERRORED, INTERRUPTED)]).all()
    return 0 if ok and len(rows) else 1
