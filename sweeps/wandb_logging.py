"""Weights & Biases: per-trial metrics through Ray's ``WandbLoggerCallback``, plus one summary
run per experiment holding the data audit and the trial table as an artifact.

The API key is read only from the environment (``WANDB_API_KEY``) or W&B's own login
(``wandb login``, stored in ~/.netrc); it is never an argument or a config value. Without a
key, runs are written offline and can be uploaded later with ``wandb sync``.
"""

from __future__ import annotations

import netrc
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class WandbSettings:
    """The ``wandb:`` block of a sweep spec."""

    project: str = "medsweep"
    entity: str | None = None


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


def logger_callback(*, settings: WandbSettings, group: str, tags: list[str]):
    """Ray's W&B callback: one W&B run per trial, grouped by experiment, config logged."""
    from ray.air.integrations.wandb import WandbLoggerCallback, _WandbLoggingActor

    class FlushingLoggingActor(_WandbLoggingActor):
        """Ray kills a trial's logging actor as soon as ``run`` returns; ``wandb.finish`` alone
        can return before W&B's service has written the run file, which then stays empty.
        ``teardown`` waits for the service to flush and stop."""

        def run(self):
            super().run()
            self._wandb.teardown()

    class FlushingWandbLoggerCallback(WandbLoggerCallback):
        _logger_actor_cls = FlushingLoggingActor

    mode = wandb_mode()
    if mode == "offline":
        os.environ["WANDB_MODE"] = "offline"
    return FlushingWandbLoggerCallback(project=settings.project, entity=settings.entity, group=group,
                                       tags=tags, log_config=True, mode=mode)


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
