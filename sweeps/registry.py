"""Sweep registry: each study is a name mapped to a typed ``SweepSpec`` plus its YAML space."""

from __future__ import annotations

from dataclasses import dataclass, field

from sweeps.report_spec import Check, ReportSpec
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
    analysis uses to pick a winner per group. ``wandb`` says where ``--wandb`` logs; ``report``
    what ``python -m analysis.report`` writes for this study.
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
    report: ReportSpec = field(default_factory=ReportSpec)


# Full profile: a trial gets a GPU and 4 CPUs for its loaders; cpu profile: one core per trial.
GPU_TRIAL_OR_ONE_CPU = {"full": Resources(cpus=4, gpus=1), "cpu": Resources(cpus=1, gpus=0)}

# Seed 000's arm names (§8.2) and the numbers it states or targets (§1.1, §6.2, §7.2, §8.3).
BCCD_REPORT = ReportSpec(
    document="seed 000",
    sections=("summary", "model_performance", "confusion_matrix", "classification_report", "roc_auc",
              "error_analysis", "sample_predictions", "ablation", "confirmation", "checks", "training_curves",
              "sweep", "trials", "environment"),
    group_labels=(((False, False), "1. Baseline"), ((True, False), "2. Weighted Loss"),
                  ((False, True), "3. Oversampling"), ((True, True), "4. Final Model")),
    checks=(
        Check("seed 000 §7.2", "WBC F1 above 0.70 (target)", "test:f1_WBC@winner", ">", 0.70, kind="target"),
        Check("seed 000 §7.2", "Platelets recall above 0.50 (target)", "test:recall_Platelets@winner", ">", 0.50,
              kind="target"),
        Check("seed 000 §7.2", "WBC F1 above 0.70 with weighted loss + oversampling",
              "test:f1_WBC@4. Final Model", ">", 0.70, kind="target"),
        Check("seed 000 §7.2", "Platelets recall above 0.50 with weighted loss + oversampling",
              "test:recall_Platelets@4. Final Model", ">", 0.50, kind="target"),
        Check("seed 000 §7.2", "RBC precision above 95% (expected)", "test:precision_RBC@winner", ">", 0.95),
        Check("seed 000 §7.2", "RBC recall above 95% (expected)", "test:recall_RBC@winner", ">", 0.95),
        Check("seed 000 §8.3", "Baseline: high overall accuracy, about 94%", "test:accuracy@1. Baseline", "≈", 0.94,
              tolerance=0.02),
        Check("seed 000 §8.3", "Baseline: Platelets F1 below 0.30", "test:f1_Platelets@1. Baseline", "<", 0.30),
        Check("seed 000 §8.3", "The final model (both corrections) is the best trade-off",
              "best_group:macro_f1", "=", "4. Final Model"),
        Check("seed 000 §1.1", "RBC patches in the dataset", "count:all:RBC", "=", 4674),
        Check("seed 000 §1.1", "WBC patches in the dataset", "count:all:WBC", "=", 176),
        Check("seed 000 §1.1", "Platelet patches in the dataset", "count:all:Platelets", "=", 39),
        Check("seed 000 §7.2", "WBC patches in the training split", "count:train:WBC", "=", 90),
        Check("seed 000 §7.2", "Platelet patches in the training split", "count:train:Platelets", "=", 22),
        Check("seed 000 §6.2", "Test support RBC", "count:test:RBC", "=", 1031),
        Check("seed 000 §6.2", "Test support WBC", "count:test:WBC", "=", 47),
        Check("seed 000 §6.2", "Test support Platelets", "count:test:Platelets", "=", 8),
    ),
)

# Seed 004's U-Net tables (one per model, lr x dropout rows on the test split) and its claims.
UNET_REPORT = ReportSpec(
    document="seed 004",
    sections=("summary", "segmentation_tables", "inference_settings", "confirmation", "checks", "training_curves",
              "mask_grid", "sweep", "trials", "environment"),
    group_labels=((("unet",), "U-Net"), (("unet_fpn",), "U-Net + FPN"), (("unet_fpn_gelu",), "U-Net + FPN + GELU")),
    curves=("val_dice_per_image", "val_iou_per_image"),
    evaluate_all_trials=True,
    checks=(
        Check("seed 004 U-Net table", "U-Net, lr 0.001, dropout 0: Dice 91.74%",
              "config:dice_per_image@model=unet,lr=0.001,dropout=0.0", "≈", 0.9174, tolerance=0.02),
        Check("seed 004 U-Net table", "U-Net, lr 0.001, dropout 0: IoU 71.72%",
              "config:iou_per_image@model=unet,lr=0.001,dropout=0.0", "≈", 0.7172, tolerance=0.02),
        Check("seed 004 U-Net + FPN table", "U-Net + FPN, lr 0.001, dropout 0.4: Dice 91.81%",
              "config:dice_per_image@model=unet_fpn,lr=0.001,dropout=0.4", "≈", 0.9181, tolerance=0.02),
        Check("seed 004 tables", "Learning rate 0.1 gives NaN (every model, every dropout)",
              "diverged:lr=0.1", "=", "all"),
        Check("STUDIES §6", "Pooled, Dice 91.74% implies IoU 84.74% (Dice = 2·IoU/(1+IoU)), not the 71.72% reported",
              "config:iou_pooled@model=unet,lr=0.001,dropout=0.0", "≈", 0.8474, tolerance=0.02),
    ),
)


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
        resources=GPU_TRIAL_OR_ONE_CPU,
        group_by=("weighted_loss", "oversampling"),
        report=BCCD_REPORT,
    ),
    "all_unet": SweepSpec(
        name="all_unet",
        study="Lymphoblast segmentation with U-Net, U-Net + FPN and U-Net + FPN + GELU (STUDIES.md §6, seed 004)",
        study_tag="study6-seed004",
        trainable="segmentation",
        search_space="all_unet.yaml",
        metric="val_dice_per_image",
        mode="max",
        asha=AshaSettings(grace_period=5, reduction_factor=3),
        resources=GPU_TRIAL_OR_ONE_CPU,
        group_by=("model",),
        report=UNET_REPORT,
    ),
}


def get_sweep(name: str) -> SweepSpec:
    """The spec registered as ``name``; unknown names list the valid ones."""
    try:
        return SWEEPS[name]
    except KeyError:
        raise KeyError(f"unknown sweep {name!r}; valid sweeps: {', '.join(sorted(SWEEPS))}") from None
