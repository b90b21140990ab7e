"""Load an experiment directory — finished or interrupted — into tidy tables.

``trials`` has one row per trial: its config, Tune status, stop reason, epochs run, best and
last value of every reported metric, wall time and best checkpoint. ``epochs`` is the long
table of per-epoch results. Everything comes from files Tune and ``sweeps.run`` wrote:
``sweep.json``, the per-trial ``params.json``/``progress.csv``/``result.json``, Tune's
``experiment_state-*.json`` (for trials that never finished) and ``summary.csv`` when present.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sweeps.registry import get_sweep
from sweeps.space import ResolvedSweep, from_saved
from sweeps.spec import SweepSpec
from sweeps.storage import STUDY_FILE
from sweeps.study_file import load_study
from sweeps.summary import ERRORED, STOPPED_BY_ASHA, best_of
from trainables.checkpoints import META_FILE
from trainables.datasets.download import cache_dir
from trainables.engine import STOP_DIVERGED
from trainables.errors import MedsweepError
from trainables.metrics import metric_direction

SWEEP_FILE = "sweep.json"
INTERRUPTED = "interrupted"
NOT_STARTED = "not_started"
UNFINISHED_REASONS = (INTERRUPTED, NOT_STARTED)
# Tune's statuses of a trial that had begun when the experiment stopped.
STARTED_STATES = ("RUNNING", "PAUSED")
FAILED_REASONS = (STOP_DIVERGED, ERRORED)
# Columns of Tune's own bookkeeping, not metrics a trial reported.
TUNE_COLUMNS = {"timestamp", "checkpoint_dir_name", "should_checkpoint", "done", "training_iteration",
                "trial_id", "date", "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip",
                "time_since_restore", "iterations_since_restore", "node_id", "stop_reason",
                "divergence_reason", "config"}
# What ``trainables.engine.fit`` reports beside the metrics: the epoch, its learning rate and timings.
ENGINE_COLUMNS = {"epoch", "lr", "epoch_seconds", "setup_seconds"}


class ExperimentError(MedsweepError, ValueError):
    """A path that is not a readable medsweep experiment directory."""


@dataclass(frozen=True)
class Experiment:
    """A loaded experiment: where it is, what sweep it ran, and its tables."""

    directory: Path
    spec: SweepSpec
    resolved: ResolvedSweep
    trials: pd.DataFrame
    epochs: pd.DataFrame
    audit: dict
    configs: dict[str, dict]

    def config(self, trial_id: str) -> dict:
        """The trial's config exactly as Tune passed it (from ``params.json``)."""
        return dict(self.configs[trial_id])

    @property
    def metric(self) -> str:
        return self.spec.metric

    @property
    def mode(self) -> str:
        return self.spec.mode

    @property
    def axes(self) -> list[str]:
        return self.resolved.axes


def local_experiment_dir(location: str | Path) -> Path:
    """The experiment as a local directory. A path or ``file://`` URI is used where it is; an
    experiment on other storage pyarrow reads (``s3://``, ``gs://``) is copied once into the user
    cache, because the analysis writes its cache, retrained models and report beside it."""
    text = str(location)
    if "://" not in text:
        return Path(text)
    import pyarrow.fs as pafs
    filesystem, path = filesystem_of(text)
    if isinstance(filesystem, pafs.LocalFileSystem):
        return Path(path)
    mirror = cache_dir() / "experiments" / text.split("://", 1)[0] / path.strip("/")
    if not (mirror / SWEEP_FILE).exists():
        mirror.mkdir(parents=True, exist_ok=True)
        pafs.copy_files(path, str(mirror), source_filesystem=filesystem, destination_filesystem=pafs.LocalFileSystem())
    return mirror


def filesystem_of(uri: str):
    """pyarrow's filesystem for ``uri`` and the path within it."""
    import pyarrow
    import pyarrow.fs as pafs
    try:
        return pafs.FileSystem.from_uri(uri)
    except (pyarrow.ArrowException, ValueError) as exc:
        raise ExperimentError(f"{uri}: not a storage location this machine can read ({exc})") from exc


def load_experiment(directory: str | Path) -> Experiment:
    """Read the experiment at ``directory`` (a path or a storage URI, see ``local_experiment_dir``);
    a missing or unreadable one is an ``ExperimentError`` saying why."""
    directory = local_experiment_dir(directory)
    if not directory.is_dir():
        raise ExperimentError(f"{directory}: no such experiment directory (give the path "
                              f"`python -m sweeps.run` printed as 'Experiment directory')")
    saved = _read_json(directory / SWEEP_FILE, "the sweep's settings, written when a sweep starts")
    try:
        # The experiment's copy of its study file; the built-in study of that name for an
        # experiment written before experiments kept one.
        study = directory / STUDY_FILE
        spec = load_study(study) if study.is_file() else get_sweep(saved["sweep"])
        resolved = from_saved(spec, saved)
    except (KeyError, TypeError) as exc:
        raise ExperimentError(f"{directory / SWEEP_FILE}: not a medsweep sweep file ({exc})") from exc
    audit_path = directory / "data_audit.json"
    audit = _read_json(audit_path, "the data audit") if audit_path.exists() else {}
    states = tune_states(directory)
    summary = _summary_rows(directory)
    # Tune names each trial's directory after its id (``trial_dirname_creator``). A trial Tune
    # knows of may lack its directory or its params.json: a killed driver syncs them late.
    trial_ids = sorted({path.parent.name for path in directory.glob("*/params.json")} | set(states))
    rows, histories, configs = [], [], {}
    for trial_id in trial_ids:
        trial_dir = directory / trial_id
        history = read_history(trial_dir)
        configs[trial_id] = trial_config(trial_dir, states.get(trial_id, {}))
        row = trial_row(trial_dir, history, configs[trial_id], states.get(trial_id, {}), summary.get(trial_id, {}),
                        metric=spec.metric, mode=spec.mode)
        rows.append(row)
        if not history.empty:
            histories.append(history.assign(trial_id=row["trial_id"]))
    trials = pd.DataFrame(rows)
    epochs = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame(columns=["trial_id", "epoch"])
    return Experiment(directory=directory, spec=spec, resolved=resolved, trials=trials, epochs=epochs, audit=audit,
                      configs=configs)


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ExperimentError(f"{path} is missing ({what}); is {path.parent} a medsweep experiment "
                              f"directory?") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ExperimentError(f"{path}: cannot read {what} ({exc})") from exc


def tune_states(directory: Path) -> dict[str, dict]:
    """Trial id → {status, config} from Tune's newest experiment state (empty when Tune never
    wrote one). Read as plain JSON: Tune's own reader (``ExperimentAnalysis``) unpickles parts of
    the file, and the analysis runs no code from an experiment directory."""
    files = sorted(directory.glob("experiment_state-*.json"))
    if not files:
        return {}
    try:
        state = json.loads(files[-1].read_text())
        states = {}
        for trial_json, _runtime_json in state["trial_data"]:
            trial = json.loads(trial_json)
            states[trial["trial_id"]] = {"status": trial.get("status", ""), "config": trial.get("config", {})}
        return states
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExperimentError(f"{files[-1]}: Tune's experiment state is unreadable ({exc})") from exc


def trial_config(trial_dir: Path, state: dict) -> dict:
    """The trial's config from its ``params.json``, else from Tune's experiment state."""
    params = trial_dir / "params.json"
    return _read_json(params, "the trial's config") if params.exists() else dict(state.get("config", {}))


def _summary_rows(directory: Path) -> dict[str, dict]:
    path = directory / "summary.csv"
    if not path.exists():
        return {}
    try:
        table = pd.read_csv(path, dtype={"trial_id": str}, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise ExperimentError(f"{path}: unreadable ({exc}); delete it to analyse from Tune's files alone") from exc
    return {row["trial_id"]: row for row in table.to_dict("records")}


def read_history(trial_dir: Path) -> pd.DataFrame:
    """Per-epoch results of one trial from ``result.json`` (one JSON object per line; a torn
    last line of an interrupted trial is skipped)."""
    records = []
    path = trial_dir / "result.json"
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    if not records:
        return pd.DataFrame()
    history = pd.DataFrame(records).drop(columns=["config"], errors="ignore")
    if "epoch" in history:
        history = history.drop_duplicates("epoch", keep="last").sort_values("epoch", ignore_index=True)
    return history


def metric_columns(history: pd.DataFrame) -> list[str]:
    """Numeric columns holding the metrics a trial reported (not Tune's or the engine's
    bookkeeping, nor the engine's running ``best_<monitor>``)."""
    return [c for c in history.columns if c not in TUNE_COLUMNS | ENGINE_COLUMNS and not c.startswith("best_")
            and pd.api.types.is_numeric_dtype(history[c])]


def trial_row(trial_dir: Path, history: pd.DataFrame, config: dict, state: dict, summary: dict, *,
              metric: str, mode: str) -> dict:
    """One trial as a flat record (see the module docstring)."""
    last = history.iloc[-1].to_dict() if not history.empty else {}
    checkpoint = best_checkpoint(trial_dir, mode)
    reason, detail = classify_stop(trial_dir, last, state, summary, checkpointed=checkpoint is not None)
    row = {"trial_id": trial_dir.name, **{f"config/{k}": v for k, v in config.items()},
           "status": state.get("status") or summary.get("status", ""), "stop_reason": reason,
           "detail": detail, "epochs": epochs_run(history),
           "wall_seconds": float(history["time_this_iter_s"].sum()) if "time_this_iter_s" in history else 0.0,
           "best_epoch": math.nan, "best_checkpoint": str(checkpoint) if checkpoint else "",
           "path": str(trial_dir) if trial_dir.is_dir() else ""}
    for column in metric_columns(history):
        row[f"best_{column}"] = best_of(history[column], mode if column == metric else metric_direction(column))
        row[f"last_{column}"] = float(history[column].iloc[-1])
    if metric in history and not math.isnan(row.get(f"best_{metric}", math.nan)):
        scores = pd.to_numeric(history[metric], errors="coerce")
        row["best_epoch"] = int(history.loc[scores.idxmax() if mode == "max" else scores.idxmin(), "epoch"])
    return row


def epochs_run(history: pd.DataFrame) -> int:
    """The last epoch a trial reported (0 before its first report)."""
    if history.empty or "epoch" not in history:
        return 0
    epochs = pd.to_numeric(history["epoch"], errors="coerce").dropna()
    return int(epochs.max()) if not epochs.empty else 0


def classify_stop(trial_dir: Path, last: dict, state: dict, summary: dict, *,
                  checkpointed: bool) -> tuple[str, str]:
    """(stop reason, detail) of a trial: its own last report, Tune's status, or error files;
    a trial that never ended is interrupted once it began (see ``was_started``), else not
    started."""
    status = state.get("status", "")
    error_file = trial_dir / "error.txt"
    if status == "ERROR" or (not status and summary.get("stop_reason") == ERRORED) or \
            (not state and not summary and error_file.exists()):
        return ERRORED, summary.get("detail") or _last_line(error_file)
    own = last.get("stop_reason")
    if isinstance(own, str) and own:
        return own, str(last.get("divergence_reason") or "")
    if status == "TERMINATED" or summary.get("stop_reason") == STOPPED_BY_ASHA:
        return STOPPED_BY_ASHA, ""
    if summary.get("stop_reason") and summary["stop_reason"] not in UNFINISHED_REASONS:
        return str(summary["stop_reason"]), str(summary.get("detail", ""))
    status = status or summary.get("status", "")
    if was_started(status, reported=bool(last), checkpointed=checkpointed):
        return INTERRUPTED, (f"Tune status {status or 'unknown'}; continue it with `python -m sweeps.run "
                             f"<sweep> --resume --name {trial_dir.parent.name}`")
    return NOT_STARTED, ""


def was_started(status: str, *, reported: bool, checkpointed: bool) -> bool:
    """Whether an unfinished trial had begun: Tune had it running or paused, or it reported a
    result or kept a checkpoint. Tune's status alone does not tell: a resumed trial reads
    PENDING until it runs again, and a killed driver can leave a trial's checkpoint (written
    by its worker) in storage before Tune synced the trial's results there."""
    return status in STARTED_STATES or reported or checkpointed


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


def best_checkpoint(trial_dir: Path, mode: str) -> Path | None:
    """The kept checkpoint with the best monitored value (earliest epoch on a tie)."""
    found = []
    for meta_path in trial_dir.glob(f"checkpoint_*/{META_FILE}"):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        value = meta.get("value")
        if isinstance(value, (int, float)) and math.isfinite(value):
            found.append((-value if mode == "max" else value, meta.get("epoch", 0), meta_path.parent))
    return min(found, key=lambda item: item[:2])[2] if found else None


def plain(value):
    """numpy scalars → Python scalars, so values serialise and compare cleanly."""
    return value.item() if hasattr(value, "item") else value
