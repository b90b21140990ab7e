"""What a sweep is, apart from its hyperparameter values: the typed ``SweepSpec`` a study file
(``sweeps.study_file``) is validated into, with its ASHA, resources and W&B settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from sweeps.report_spec import ReportSpec
from trainables.metrics import metric_direction

# A study file's top-level keys: its search space (``sweeps.space``), then the rest of its spec
# (``sweeps.study_file``).
SPACE_SECTIONS = ("data", "fixed", "grid", "profiles")
STUDY_SECTIONS = ("study", "asha", "resources", "group_by", "wandb", "report")

@dataclass(frozen=True)
class WandbSettings:
    """The ``wandb:`` block of a sweep spec: where ``--wandb`` logs (``sweeps.wandb_logging``)."""

    project: str = "medsweep"
    entity: str | None = None


@dataclass(frozen=True)
class AshaSettings:
    """ASHA's rung schedule; ``max_t`` is always the trial's ``max_epochs``."""

    grace_period: int = 10
    reduction_factor: float = 3


@dataclass(frozen=True)
class Resources:
    cpus: float
    gpus: float


# Full profile: a trial gets a GPU and 4 CPUs for its loaders; cpu profile: one core per trial.
GPU_TRIAL_OR_ONE_CPU = {"full": Resources(cpus=4, gpus=1), "cpu": Resources(cpus=1, gpus=0)}


@dataclass(frozen=True, kw_only=True)
class SweepSpec:
    """Everything about a sweep that is not a hyperparameter value.

    ``group_by`` names the axes whose combinations the study compares (the arms), which the
    analysis uses to pick a winner per group. ``wandb`` says where ``--wandb`` logs; ``report``
    what ``python -m analysis.report`` writes for this study. ``search_space`` is the study
    file it was read from: a built-in's file name in ``search_spaces/`` (the default,
    ``<name>.yaml``) or a study file's absolute path; ``mode`` is the direction declared for ``metric`` in
    ``trainables.metrics.METRIC_DIRECTIONS``. Building a spec validates its report's checks.
    """

    name: str
    study: str
    study_tag: str
    trainable: str
    metric: str
    search_space: str = ""
    mode: str = field(init=False)
    asha: AshaSettings = field(default_factory=AshaSettings)
    resources: dict[str, Resources] = field(default_factory=GPU_TRIAL_OR_ONE_CPU.copy)
    group_by: tuple[str, ...] = field(default=())
    wandb: WandbSettings = field(default_factory=WandbSettings)
    report: ReportSpec = field(default_factory=ReportSpec)

    def __post_init__(self) -> None:
        object.__setattr__(self, "search_space", self.search_space or f"{self.name}.yaml")
        object.__setattr__(self, "mode", metric_direction(self.metric))
        self.report.validate(self.name)
