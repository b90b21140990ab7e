"""The end-of-sweep table: one row per trial with its arm, status, stop reason and best metric."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from trainables.engine import STOP_COMPLETED, STOP_DIVERGED, STOP_EARLY

STOPPED_BY_ASHA = "stopped_by_asha"
ERRORED = "errored"
KNOWN_REASONS = (STOP_COMPLETED, STOP_EARLY, STOPPED_BY_ASHA, STOP_DIVERGED, ERRORED)


def stop_reason(last_result: dict, error: BaseException | None) -> str:
    """Why a finished trial ended: its own final report says so, unless it raised or was
    stopped from outside (by ASHA) before reporting an ending of its own."""
    if error is not None:
        return ERRORED
    return last_result.get("stop_reason") or STOPPED_BY_ASHA


def trial_rows(result_grid, *, axes: list[str], metric: str, mode: str) -> pd.DataFrame:
    """One row per trial of a Ray Tune ``ResultGrid``."""
    rows = []
    for result in result_grid:
        last = result.metrics or {}
        history = result.metrics_dataframe
        reason = stop_reason(last, result.error)
        rows.append({
            "trial_id": last.get("trial_id") or Path(result.path).name,
            **{axis: result.config.get(axis) for axis in axes},
            "status": "ERROR" if result.error is not None else "TERMINATED",
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
    """0 when every trial ended in a known state other than errored."""
    ok = rows["stop_reason"].isin([r for r in KNOWN_REASONS if r != ERRORED]).all()
    return 0 if ok and len(rows) else 1
