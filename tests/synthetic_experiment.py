"""Experiment directories written the way Tune and ``sweeps.run`` write them, without training,
for testing the analysis on every way a trial can end."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from sweeps.registry import get_sweep
from sweeps.space import resolve
from trainables.checkpoints import META_FILE, STATE_FILE

FIXED = resolve(get_sweep("bccd_imbalance"), profile="cpu", smoke=True)


def trial(trial_id: str, values: list[float], *, weighted_loss=False, oversampling=False, lr=1e-3,
          status="TERMINATED", stop_reason="completed", error: str | None = None,
          checkpoints: tuple[int, ...] | None = None, synced: int | None = None, params_synced: bool = True,
          extra: dict[str, list[float]] | None = None) -> dict:
    """One trial: its per-epoch val_macro_f1 ``values`` (nan for a diverged epoch), any
    ``extra`` metrics per epoch (name → one value per epoch), how Tune last saw it and how its
    last report ended. A killed driver can leave storage behind its trials: only the first
    ``synced`` results (default all) reach ``result.json``, and ``params_synced`` false leaves
    out ``params.json``; checkpoints, which workers write themselves, are all there."""
    return {"trial_id": trial_id, "values": values, "status": status, "stop_reason": stop_reason,
            "error": error, "checkpoints": checkpoints, "synced": len(values) if synced is None else synced,
            "params_synced": params_synced, "extra": extra or {},
            "config": {**FIXED.fixed, "weighted_loss": weighted_loss, "oversampling": oversampling, "lr": lr}}


def make_experiment(directory: Path, trials: list[dict], *, summary: bool = True,
                    pending: tuple[str, ...] = ()) -> Path:
    """Write ``sweep.json``, the audit, one directory per trial, Tune's experiment state and,
    when ``summary`` is true (the sweep ended), ``summary.csv``. ``pending`` names trials Tune
    had queued but never started."""
    directory.mkdir(parents=True)
    (directory / "sweep.json").write_text(json.dumps(FIXED.to_dict()))
    (directory / "data_audit.json").write_text(json.dumps({
        "class_names": ["RBC", "WBC", "Platelets"],
        "kept": {"train": {"RBC": 20, "WBC": 3, "Platelets": 2}, "test": {"RBC": 9, "WBC": 1, "Platelets": 1}}}))
    trial_data, rows = [], []
    for spec in trials:
        trial_dir = directory / spec["trial_id"]
        trial_dir.mkdir()
        if spec["params_synced"]:
            (trial_dir / "params.json").write_text(json.dumps(spec["config"]))
        lines = []
        for epoch, value in enumerate(spec["values"][:spec["synced"]], start=1):
            last = epoch == len(spec["values"])
            lines.append(json.dumps({
                "epoch": epoch, "val_macro_f1": value, "val_accuracy": 0.5 + value / 2, "val_loss": 1.0 / epoch,
                "train_loss": 1.2 / epoch, **{name: values[epoch - 1] for name, values in spec["extra"].items()},
                "lr": 1e-3, "epoch_seconds": 2.0, "setup_seconds": 0.5, "node_id": "node-0",
                "time_this_iter_s": 2.0, "trial_id": spec["trial_id"],
                "stop_reason": spec["stop_reason"] if last and spec["stop_reason"] else "",
                **({"divergence_reason": "non-finite training loss (nan)"}
                   if last and spec["stop_reason"] == "diverged" else {})}))
        (trial_dir / "result.json").write_text("\n".join(lines) + ("\n" if lines else ""))
        for epoch in spec["checkpoints"] or (range(1, len(spec["values"]) + 1)):
            checkpoint = trial_dir / f"checkpoint_{epoch - 1:06d}"
            checkpoint.mkdir()
            (checkpoint / STATE_FILE).write_bytes(b"")
            (checkpoint / META_FILE).write_text(json.dumps({"epoch": epoch, "value": spec["values"][epoch - 1]}))
        if spec["error"]:
            (trial_dir / "error.txt").write_text(f"Traceback (most recent call last):\n  ...\n{spec['error']}\n")
        trial_data.append([json.dumps({"trial_id": spec["trial_id"], "status": spec["status"],
                                       "config": spec["config"]}),
                           json.dumps({"error_filename": "error.txt" if spec["error"] else None})])
        rows.append({"trial_id": spec["trial_id"], "status": spec["status"],
                     "stop_reason": "errored" if spec["error"] else (spec["stop_reason"] or "stopped_by_asha")})
    for trial_id in pending:
        trial_data.append([json.dumps({"trial_id": trial_id, "status": "PENDING",
                                       "config": {**FIXED.fixed, "lr": 1e-4}}), json.dumps({})])
    (directory / "experiment_state-2026-11-23_10-00-00.json").write_text(json.dumps({"trial_data": trial_data}))
    if summary:
        pd.DataFrame(rows).to_csv(directory / "summary.csv", index=False)
    return directory


def grid_trials(value_of: Callable[[dict], float], *, reasons: dict[int, str] | None = None) -> list[dict]:
    """One trial per point of the smoke grid, in grid order (ids ``g00``, ``g01``, …), whose best
    val_macro_f1 is ``value_of(config)``. ``reasons`` (grid index → stop reason) ends chosen
    trials otherwise: "stopped_by_asha" after one epoch, "diverged" with nan in its second,
    "errored" with an error file; any other trial runs both epochs, ending with that reason
    (default "completed")."""
    specs = []
    for index, config in enumerate(FIXED.configs()):
        reason = (reasons or {}).get(index, "completed")
        value = float(value_of(config))
        axes = {axis: config[axis] for axis in ("weighted_loss", "oversampling", "lr")}
        if reason == "stopped_by_asha":
            specs.append(trial(f"g{index:02d}", [value], stop_reason="", **axes))
        elif reason == "diverged":
            specs.append(trial(f"g{index:02d}", [value, float("nan")], stop_reason="diverged", **axes))
        elif reason == "errored":
            specs.append(trial(f"g{index:02d}", [value], status="ERROR", stop_reason="",
                               error="RuntimeError: CUDA out of memory", **axes))
        else:
            specs.append(trial(f"g{index:02d}", [value - 0.05, value], stop_reason=reason, **axes))
    return specs
