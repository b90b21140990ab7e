"""Sweep registry: each study is a name mapped to a typed ``SweepSpec`` plus its YAML space."""

from __future__ import annotations

from dataclasses import dataclass, field

from sweeps.report_spec import Check, ReportSpec
from sweeps.wandb_logging import WandbSettings
from trainables.registries import Registry


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
    citations=(("model_performance", "§5.1"), ("confusion_matrix", "§6.1"), ("classification_report", "§6.2"),
               ("roc_auc", "§6.3"), ("sample_predictions", "§7.4"), ("ablation", "§8.2"), ("factorial", "§8.4"),
               ("checks", "§7.2, §8.3"), ("environment", "§10.3")),
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
    citations=(("trial_tables", "tables"),),
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


# Seed 001's model comparison (accuracy next to parameters and speed) and its stated numbers.
ALL_TRANSFER_REPORT = ReportSpec(
    document="seed 001",
    sections=("summary", "model_comparison", "confusion_matrix", "classification_report",
              "roc_auc", "error_analysis", "sample_predictions", "confirmation", "checks", "training_curves", "sweep",
              "trials", "environment"),
    group_labels=((("custom_cnn",), "CNN Custom"), (("vgg16_frozen",), "VGG16 Baseline"),
                  (("vgg16_finetune",), "VGG16 Fine-Tune")),
    citations=(("model_comparison", "Model Comparison Summary"),
               ("classification_report", "Detailed Performance per Class")),
    curves=("val_accuracy", "train_accuracy"),
    checks=(
        Check("seed 001 Model Comparison Summary", "VGG16 Fine-Tune test accuracy 98.62%",
              "test:accuracy@VGG16 Fine-Tune", "≈", 0.9862, tolerance=0.02),
        Check("seed 001 Model Comparison Summary", "VGG16 Baseline test accuracy 98.31%",
              "test:accuracy@VGG16 Baseline", "≈", 0.9831, tolerance=0.02),
        Check("seed 001 Model Comparison Summary", "CNN Custom test accuracy about 95.0%",
              "test:accuracy@CNN Custom", "≈", 0.95, tolerance=0.02),
        Check("seed 001 Champion Model", "VGG16 Fine-Tune macro F1 0.985", "test:macro_f1@VGG16 Fine-Tune",
              "≈", 0.985, tolerance=0.02),
        Check("seed 001 Performance Hierarchy", "VGG16 Fine-Tune is the best model", "best_group:accuracy",
              "=", "VGG16 Fine-Tune"),
        Check("seed 001 Distribusi Kelas", "Benign test images", "count:test:Benign", "=", 101),
        Check("seed 001 Distribusi Kelas", "Early test images", "count:test:Early", "=", 197),
        Check("seed 001 Distribusi Kelas", "Pre test images", "count:test:Pre", "=", 193),
        Check("seed 001 Distribusi Kelas", "Pro test images", "count:test:Pro", "=", 161),
    ),
)

# Seed 004's four tables (model x data-loading option, lr x dropout rows) and its claims.
ALL_INCEPTION_REPORT = ReportSpec(
    document="seed 004",
    sections=("summary", "trial_tables", "model_comparison", "confusion_matrix", "classification_report", "roc_auc",
              "confirmation", "checks", "training_curves", "sweep", "trials", "environment"),
    group_labels=((("inception_resnet_v2", 1), "InceptionResNetV2, data-loading option 1"),
                  (("nasnetalarge", 1), "NASNetLarge, data-loading option 1"),
                  (("inception_resnet_v2", 2), "InceptionResNetV2, data-loading option 2"),
                  (("nasnetalarge", 2), "NASNetLarge, data-loading option 2")),
    citations=(("trial_tables", "tables"),
               ("classification_report", "Final Optimized InceptionResNetV2 Classification Report"),
               ("roc_auc", "ROC Curves")),
    curves=("val_accuracy", "train_accuracy"),
    evaluate_all_trials=True,
    checks=(
        Check("seed 004 summary table", "InceptionResNetV2, option 2, lr 0.0001, dropout 0: test accuracy 98.50%",
              "config:accuracy@model=inception_resnet_v2,loading_option=2,lr=0.0001,dropout=0.0", "≈", 0.985,
              tolerance=0.02),
        Check("seed 004 conclusions", "InceptionResNetV2 with option 2 is the best combination", "best_group:accuracy",
              "=", "InceptionResNetV2, data-loading option 2"),
        Check("seed 004 tables", "Learning rate 0.1 stays at chance (25%) with losses above 1,000", "diverged:lr=0.1",
              "=", "all"),
        Check("STUDIES §5 Data", "Benign images", "count:all:Benign", "=", 504),
        Check("STUDIES §5 Data", "Early images", "count:all:Early", "=", 985),
        Check("STUDIES §5 Data", "Pre images", "count:all:Pre", "=", 963),
        Check("STUDIES §5 Data", "Pro images", "count:all:Pro", "=", 804),
    ),
)

# Seed 002's results table (parameters, accuracies, inference time per model) and its claims.
CHESTMNIST_REPORT = ReportSpec(
    document="seed 002",
    sections=("summary", "model_comparison", "confusion_matrix", "classification_report",
              "roc_auc", "error_analysis", "sample_predictions", "confirmation", "checks", "training_curves", "sweep",
              "trials", "environment"),
    group_labels=((("mobilenetv3_large_medmnist",), "MobileNet-V3"), (("densenet121_medmnist",), "DenseNet-121"),
                  (("efficientnet_b0_medmnist",), "EfficientNet-B0")),
    citations=(("model_comparison", "Model Performance Results"),),
    curves=("val_accuracy", "val_sensitivity", "val_specificity"),
    checks=(
        Check("seed 002 Model Performance Results", "DenseNet-121 test accuracy 91.78%", "test:accuracy@DenseNet-121",
              "≈", 0.9178, tolerance=0.02),
        Check("seed 002 Model Performance Results", "EfficientNet-B0 test accuracy 89.45%",
              "test:accuracy@EfficientNet-B0", "≈", 0.8945, tolerance=0.02),
        Check("seed 002 Model Performance Results", "MobileNet-V3 test accuracy about 84%",
              "test:accuracy@MobileNet-V3", "≈", 0.84, tolerance=0.02),
        Check("seed 002 Model Performance Results", "MobileNet-V3 is the best model (🏆)", "best_group:accuracy",
              "=", "MobileNet-V3"),
    ),
)


# Seed 003's tables: val mAP per detection confidence per preprocessing variant (III, IV), the
# validation and test performance (VII, VIII), the count error (X), and its claims.
LYMPHOBLAST_REPORT = ReportSpec(
    document="seed 003",
    sections=("summary", "confidence_tables", "detection_performance", "count_mae", "inference_grid",
              "detection_images", "confirmation", "checks", "training_curves", "sweep", "trials", "environment"),
    group_labels=((("raw",), "Raw images"), (("segmented",), "Segmented images")),
    curves=("val_mask_map50", "val_map50", "val_f1"),
    citations=(("confidence_tables", "Tables III and IV"), ("validation_performance", "Table VII"),
               ("test_performance", "Table VIII"), ("count_mae", "Table X")),
    checks=(
        Check("seed 003 line 176", "Learning rate 0.01 makes the loss NaN", "diverged:lr=0.01", "=", "all"),
        Check("seed 003 Table VIII", "Segmented images, test precision 0.9159", "test:precision@Segmented images",
              "≈", 0.9159, tolerance=0.02),
        Check("seed 003 Table VIII", "Segmented images, test recall 1.0", "test:recall@Segmented images", "≈", 1.0,
              tolerance=0.02),
        Check("seed 003 Table VIII", "Segmented images, test F1 0.9561", "test:f1@Segmented images", "≈", 0.9561,
              tolerance=0.02),
        Check("seed 003 Table VIII", "Segmented images, test mAP 0.9275", "test:map50@Segmented images", "≈", 0.9275,
              tolerance=0.02),
        Check("seed 003 line 302", "Segmentation before training gives the better model", "best_group:map50", "=",
              "Segmented images"),
    ),
)

# The same tables for BCCD's boxes; seed 003's numbers are about its own data, so only its
# statement about the learning rate is checked.
BCCD_DETECTION_REPORT = ReportSpec(
    document="seed 003",
    sections=LYMPHOBLAST_REPORT.sections,
    group_labels=LYMPHOBLAST_REPORT.group_labels,
    curves=("val_map50", "val_f1"),
    citations=LYMPHOBLAST_REPORT.citations,
    checks=(Check("seed 003 line 176", "Learning rate 0.01 makes the loss NaN", "diverged:lr=0.01", "=", "all"),),
)


SWEEPS: Registry[SweepSpec] = Registry("sweep", entries={
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
    "all_transfer": SweepSpec(
        name="all_transfer",
        study="ALL subtype classification, a small CNN against VGG16 transfer learning (STUDIES.md §2, seed 001)",
        study_tag="study2-seed001",
        trainable="classification",
        search_space="all_transfer.yaml",
        metric="val_macro_f1",
        mode="max",
        asha=AshaSettings(grace_period=5, reduction_factor=3),
        resources=GPU_TRIAL_OR_ONE_CPU,
        group_by=("model",),
        report=ALL_TRANSFER_REPORT,
    ),
    "all_inception_nasnet": SweepSpec(
        name="all_inception_nasnet",
        study="ALL classification with InceptionResNetV2 and NASNetLarge under two data-loading options "
              "(STUDIES.md §5, seed 004)",
        study_tag="study5-seed004",
        trainable="classification",
        search_space="all_inception_nasnet.yaml",
        metric="val_macro_f1",
        mode="max",
        asha=AshaSettings(grace_period=10, reduction_factor=3),
        resources=GPU_TRIAL_OR_ONE_CPU,
        group_by=("model", "loading_option"),
        report=ALL_INCEPTION_REPORT,
    ),
    "chestmnist_binary": SweepSpec(
        name="chestmnist_binary",
        study="Cardiomegaly vs Pneumothorax on ChestMNIST with DenseNet-121, EfficientNet-B0 and MobileNetV3 "
              "(STUDIES.md §3, seed 002)",
        study_tag="study3-seed002",
        trainable="classification",
        search_space="chestmnist_binary.yaml",
        metric="val_auc",
        mode="max",
        asha=AshaSettings(grace_period=10, reduction_factor=3),
        resources=GPU_TRIAL_OR_ONE_CPU,
        group_by=("model",),
        report=CHESTMNIST_REPORT,
    ),
    "lymphoblast_maskrcnn": SweepSpec(
        name="lymphoblast_maskrcnn",
        study="Lymphoblast detection and instance segmentation with Mask R-CNN, raw and segmented images "
              "(STUDIES.md §4, seed 003)",
        study_tag="study4-seed003",
        trainable="detection",
        search_space="lymphoblast_maskrcnn.yaml",
        metric="val_mask_map50",
        mode="max",
        asha=AshaSettings(grace_period=10, reduction_factor=3),
        resources=GPU_TRIAL_OR_ONE_CPU,
        group_by=("preprocessing",),
        report=LYMPHOBLAST_REPORT,
    ),
    "bccd_detection": SweepSpec(
        name="bccd_detection",
        study="Blood-cell detection on BCCD's boxes with the study-4 trainable and axes (Faster R-CNN; STUDIES.md §4 "
              "runnable twin)",
        study_tag="study4-bccd",
        trainable="detection",
        search_space="bccd_detection.yaml",
        metric="val_map50",
        mode="max",
        asha=AshaSettings(grace_period=10, reduction_factor=3),
        resources=GPU_TRIAL_OR_ONE_CPU,
        group_by=("preprocessing",),
        report=BCCD_DETECTION_REPORT,
    ),
})


def get_sweep(name: str) -> SweepSpec:
    """The spec registered as ``name``; unknown names list the valid ones."""
    return SWEEPS.get(name)
