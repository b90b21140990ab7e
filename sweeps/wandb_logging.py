"""Weights & Biases: one run per trial with its config and per-epoch metrics, plus one summary
run per experiment holding the data audit and the trial table as an artifact.

The API key is read only from the environment (``WANDB_API_KEY``) or W&B's own login
(``wandb login``, stored in ~/.netrc); it is never an argument or a config value. Without a
key, runs are written offline and can be uploaded later with ``wandb sync``.
"""

from __future__ import annotations

import netrc
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from ray.tune import Callback

from sweeps.spec import SweepSpec, WandbSettings
from sweeps.storage import ExperimentLocation


def has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode() -> str:
    """``WANDB_MODE`` when set, else online with credentials and offline without."""
    return os.environ.get("WANDB_MODE") or ("online" if has_credentials() else "offline")


class WandbTrialLogger(Callback):
    """One W&B run per trial, written from the driver: config at start, every reported epoch,
    finished when the trial ends. Logging from the driver (not from Ray's per-trial logging
    actors, which Ray kills as soon as ``wandb.finish`` returns and so can leave an empty
    offline run) keeps every run complete."""

    def __init__(self, *, settings: WandbSettings, group: str, tags: list[str]) -> None:
        self.settings, self.group, self.tags = settings, group, tags
        self.mode = wandb_mode()
        self._runs: dict = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_runs": {}}

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        import wandb
        directory = Path(trial.local_path)
        directory.mkdir(parents=True, exist_ok=True)
        self._runs[trial.trial_id] = wandb.init(
            project=self.settings.project, entity=self.settings.entity, group=self.group, tags=self.tags,
            name=trial.trial_id, job_type="trial", config=dict(trial.config), dir=str(directory),
            mode=self.mode, reinit="create_new")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        run = self._runs.get(trial.trial_id)
        if run is not None:
            run.log({k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
                    step=int(result.get("training_iteration", 0)))

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._finish(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._finish(trial.trial_id)

    def on_experiment_end(self, trials, **info) -> None:
        for trial_id in list(self._runs):
            self._finish(trial_id)

    def _finish(self, trial_id: str) -> None:
        run = self._runs.pop(trial_id, None)
        if run is not None:
            run.finish()


def log_experiment_summary(*, settings: WandbSettings, group: str, tags: list[str], files: dict[str, str],
                           rows: pd.DataFrame, directory: Path | None) -> Path:
    """One W&B run holding the audit and summary files as an artifact and the trial table.

    Returns the directory W&B wrote into (for the ``wandb sync`` hint when offline).
    """
    import wandb

    target = directory or Path(tempfile.mkdtemp(prefix="medsweep-wandb-"))
    run = wandb.init(project=settings.project, entity=settings.entity, group=group, tags=tags,
                     job_type="sweep-summary", name=f"{group}-summary", dir=str(target), mode=wandb_mode(),
                     reinit="finish_previous")
    with tempfile.TemporaryDirectory() as staging:
        artifact = wandb.Artifact(name=f"{group}-results", type="sweep-results")
        for name, text in files.items():
            path = Path(staging) / name
            path.write_text(text)
            artifact.add_file(str(path), name=name)
        run.log_artifact(artifact)
        run.log({"trials": wandb.Table(dataframe=rows.astype(str))})
        run.finish()
    return target / "wandb"


def sync_hint(experiment_dir: str) -> str:
    return (f"W&B ran offline (no API key). Upload later with:\n"
            f"  wandb sync {experiment_dir}/wandb/offline-run-* {experiment_dir}/*/wandb/offline-run-*")


def wandb_tags(spec: SweepSpec) -> list[str]:
    return [spec.name, spec.study_tag]


def wandb_callbacks(spec: SweepSpec, location: ExperimentLocation) -> tuple:
    return (WandbTrialLogger(settings=spec.wandb, group=location.name, tags=wandb_tags(spec)),)


def report_to_wandb(spec: SweepSpec, location: ExperimentLocation, rows, echo: Callable[[str], None]) -> None:
    files = {name: location.read_text(name) for name in ("data_audit.json", "summary.csv")}
    log_experiment_summary(settings=spec.wandb, group=location.name, tags=wandb_tags(spec), files=files,
                           rows=rows.drop(columns=["path"]), directory=location.local_dir)
    if wandb_mode() == "offline":
        echo(sync_hint(location.path))
