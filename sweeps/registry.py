"""Sweep registry: each study is a name mapped to a typed ``SweepSpec`` plus its YAML space."""

from __future__ import annotations

from dataclasses import dataclass, field

from sweeps.wandb_logging import WandbSettings


@dataclass(frozen=True)
class AshaSettings:
    """ASHA's rung schedule; ``max_t`` is always the trial's ``max_epochs``."""

    grace_period: int
    reduction_factor: float


@dataclass(frozen=True)
class Resources:
    cpus: float
    gpus: float


@dataclass(frozen=True)
class SweepSpec:
    """Everything about a sweep that is not a hyperparameter value.

    ``group_by`` names the axes whose combinations the study compares (the arms), which the
    analysis uses to pick a winner per group. ``wandb`` says where ``--wandb`` logs.
    """

    name: str
    study: str
    study_tag: str
    trainable: str
    search_space: str
    metric: str
    mode: str
    asha: AshaSettings
    resources: dict[str, Resources]
    group_by: tuple[str, ...] = field(default=())
    wandb: WandbSettings = field(default_factory=WandbSettings)


SWEEPS: dict[str, SweepSpec] = {
    "bccd_imbalance": SweepSpec(
        name="bccd_imbalance",
        study="Blood-cell patch classification under class imbalance (STUDIES.md §1, seed 000)",
        study_tag="study1-seed000",
        trainable="classification",
        search_space="bccd_imbalance.yaml",
        metric="val_macro_f1",
        mode="max",
        asha=AshaSettings(grace_period=5, reduction_factor=3),
        resources={"full": Resources(cpus=4, gpus=1), "cpu": Resources(cpus=1, gpus=0)},
        group_by=("weighted_loss", "oversampling"),
    ),
}


def get_sweep(name: str) -> SweepSpec:
    """The spec registered as ``name``; unknown names list the valid ones."""
    try:
        return SWEEPS[name]
    except KeyError:
        raise KeyError(f"unknown sweep {name!r}; valid sweeps: {', '.join(sorted(SWEEPS))}") from None
