"""Sweep registry: each study is a typed ``SweepSpec``, registered under its ``name``, plus its
YAML space."""

from __future__ import annotations

from dataclasses import dataclass, field

from sweeps.report_spec import BestGroup, Check, ClassCount, Diverged, ReportSpec, TrialScore, WinnerScore
from trainables.metrics import metric_direction
from trainables.registries import Registry


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
    what ``python -m analysis.report`` writes for this study. ``search_space`` defaults to
    ``search_spaces/<name>.yaml``; ``mode`` is the direction declared for ``metric`` in
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
        Check(source="seed 000 §7.2", statement="WBC F1 above 0.70 (target)", quantity=WinnerScore(metric="f1_WBC"),
              op=">", value=0.70, kind="target"),
        Check(source="seed 000 §7.2", statement="Platelets recall above 0.50 (target)",
              quantity=WinnerScore(metric="recall_Platelets"), op=">", value=0.50, kind="target"),
        Check(source="seed 000 §7.2", statement="WBC F1 above 0.70 with weighted loss + oversampling",
              quantity=WinnerScore(metric="f1_WBC", group="4. Final Model"), op=">", value=0.70, kind="target"),
        Check(source="seed 000 §7.2", statement="Platelets recall above 0.50 with weighted loss + oversampling",
              quantity=WinnerScore(metric="recall_Platelets", group="4. Final Model"), op=">", value=0.50,
              kind="target"),
        Check(source="seed 000 §7.2", statement="RBC precision above 95% (expected)",
              quantity=WinnerScore(metric="precision_RBC"), op=">", value=0.95),
        Check(source="seed 000 §7.2", statement="RBC recall above 95% (expected)",
              quantity=WinnerScore(metric="recall_RBC"), op=">", value=0.95),
        Check(source="seed 000 §8.3", statement="Baseline: high overall accuracy, about 94%",
              quantity=WinnerScore(metric="accuracy", group="1. Baseline"), op="≈", value=0.94, tolerance=0.02),
        Check(source="seed 000 §8.3", statement="Baseline: Platelets F1 below 0.30",
              quantity=WinnerScore(metric="f1_Platelets", group="1. Baseline"), op="<", value=0.30),
        Check(source="seed 000 §8.3", statement="The final model (both corrections) is the best trade-off",
              quantity=BestGroup(metric="macro_f1"), op="=", value="4. Final Model"),
        Check(source="seed 000 §1.1", statement="RBC patches in the dataset",
              quantity=ClassCount(split="all", class_name="RBC"), op="=", value=4674),
        Check(source="seed 000 §1.1", statement="WBC patches in the dataset",
              quantity=ClassCount(split="all", class_name="WBC"), op="=", value=176),
        Check(source="seed 000 §1.1", statement="Platelet patches in the dataset",
              quantity=ClassCount(split="all", class_name="Platelets"), op="=", value=39),
        Check(source="seed 000 §7.2", statement="WBC patches in the training split",
              quantity=ClassCount(split="train", class_name="WBC"), op="=", value=90),
        Check(source="seed 000 §7.2", statement="Platelet patches in the training split",
              quantity=ClassCount(split="train", class_name="Platelets"), op="=", value=22),
        Check(source="seed 000 §6.2", statement="Test support RBC", quantity=ClassCount(split="test", class_name="RBC"),
              op="=", value=1031),
        Check(source="seed 000 §6.2", statement="Test support WBC", quantity=ClassCount(split="test", class_name="WBC"),
              op="=", value=47),
        Check(source="seed 000 §6.2", statement="Test support Platelets",
              quantity=ClassCount(split="test", class_name="Platelets"), op="=", value=8),
    ),
)

# What decides whether a learning rate diverges, for the checks that say one does: the same
# optimiser and divergence rule make such a claim comparable at any profile.
DIVERGENCE_SETTINGS = ("optimizer", "divergence_factor")

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
        Check(source="seed 004 U-Net table", statement="U-Net, lr 0.001, dropout 0: Dice 91.74%",
              quantity=TrialScore(metric="dice_per_image", where={"model": "unet", "lr": 0.001, "dropout": 0.0}),
              op="≈", value=0.9174, tolerance=0.02),
        Check(source="seed 004 U-Net table", statement="U-Net, lr 0.001, dropout 0: IoU 71.72%",
              quantity=TrialScore(metric="iou_per_image", where={"model": "unet", "lr": 0.001, "dropout": 0.0}), op="≈",
              value=0.7172, tolerance=0.02),
        Check(source="seed 004 U-Net + FPN table", statement="U-Net + FPN, lr 0.001, dropout 0.4: Dice 91.81%",
              quantity=TrialScore(metric="dice_per_image", where={"model": "unet_fpn", "lr": 0.001, "dropout": 0.4}),
              op="≈", value=0.9181, tolerance=0.02),
        Check(source="seed 004 tables", statement="Learning rate 0.1 gives NaN (every model, every dropout)",
              quantity=Diverged(where={"lr": 0.1}), op="=", value="all",
              depends_on=DIVERGENCE_SETTINGS),
        Check(source="STUDIES §6",
              statement="Pooled, Dice 91.74% implies IoU 84.74% (Dice = 2·IoU/(1+IoU)), not the 71.72% reported",
              quantity=TrialScore(metric="iou_pooled", where={"model": "unet", "lr": 0.001, "dropout": 0.0}), op="≈",
              value=0.8474, tolerance=0.02),
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
        Check(source="seed 001 Model Comparison Summary", statement="VGG16 Fine-Tune test accuracy 98.62%",
              quantity=WinnerScore(metric="accuracy", group="VGG16 Fine-Tune"), op="≈", value=0.9862, tolerance=0.02),
        Check(source="seed 001 Model Comparison Summary", statement="VGG16 Baseline test accuracy 98.31%",
              quantity=WinnerScore(metric="accuracy", group="VGG16 Baseline"), op="≈", value=0.9831, tolerance=0.02),
        Check(source="seed 001 Model Comparison Summary", statement="CNN Custom test accuracy about 95.0%",
              quantity=WinnerScore(metric="accuracy", group="CNN Custom"), op="≈", value=0.95, tolerance=0.02),
        Check(source="seed 001 Champion Model", statement="VGG16 Fine-Tune macro F1 0.985",
              quantity=WinnerScore(metric="macro_f1", group="VGG16 Fine-Tune"), op="≈", value=0.985, tolerance=0.02),
        Check(source="seed 001 Performance Hierarchy", statement="VGG16 Fine-Tune is the best model",
              quantity=BestGroup(metric="accuracy"), op="=", value="VGG16 Fine-Tune"),
        Check(source="seed 001 Distribusi Kelas", statement="Benign test images",
              quantity=ClassCount(split="test", class_name="Benign"), op="=", value=101),
        Check(source="seed 001 Distribusi Kelas", statement="Early test images",
              quantity=ClassCount(split="test", class_name="Early"), op="=", value=197),
        Check(source="seed 001 Distribusi Kelas", statement="Pre test images",
              quantity=ClassCount(split="test", class_name="Pre"), op="=", value=193),
        Check(source="seed 001 Distribusi Kelas", statement="Pro test images",
              quantity=ClassCount(split="test", class_name="Pro"), op="=", value=161),
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
        Check(source="seed 004 summary table",
              statement="InceptionResNetV2, option 2, lr 0.0001, dropout 0: test accuracy 98.50%",
              quantity=TrialScore(metric="accuracy", where={"model": "inception_resnet_v2", "loading_option": 2,
                                                            "lr": 0.0001, "dropout": 0.0}),
              op="≈", value=0.985, tolerance=0.02),
        Check(source="seed 004 conclusions", statement="InceptionResNetV2 with option 2 is the best combination",
              quantity=BestGroup(metric="accuracy"), op="=", value="InceptionResNetV2, data-loading option 2"),
        Check(source="seed 004 tables", statement="Learning rate 0.1 stays at chance (25%) with losses above 1,000",
              quantity=Diverged(where={"lr": 0.1}), op="=", value="all",
              depends_on=DIVERGENCE_SETTINGS),
        Check(source="STUDIES §5 Data", statement="Benign images",
              quantity=ClassCount(split="all", class_name="Benign"), op="=", value=504),
        Check(source="STUDIES §5 Data", statement="Early images", quantity=ClassCount(split="all", class_name="Early"),
              op="=", value=985),
        Check(source="STUDIES §5 Data", statement="Pre images", quantity=ClassCount(split="all", class_name="Pre"),
              op="=", value=963),
        Check(source="STUDIES §5 Data", statement="Pro images", quantity=ClassCount(split="all", class_name="Pro"),
              op="=", value=804),
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
        Check(source="seed 002 Model Performance Results", statement="DenseNet-121 test accuracy 91.78%",
              quantity=WinnerScore(metric="accuracy", group="DenseNet-121"), op="≈", value=0.9178, tolerance=0.02),
        Check(source="seed 002 Model Performance Results", statement="EfficientNet-B0 test accuracy 89.45%",
              quantity=WinnerScore(metric="accuracy", group="EfficientNet-B0"), op="≈", value=0.8945, tolerance=0.02),
        Check(source="seed 002 Model Performance Results", statement="MobileNet-V3 test accuracy about 84%",
              quantity=WinnerScore(metric="accuracy", group="MobileNet-V3"), op="≈", value=0.84, tolerance=0.02),
        Check(source="seed 002 Model Performance Results", statement="MobileNet-V3 is the best model (🏆)",
              quantity=BestGroup(metric="accuracy"), op="=", value="MobileNet-V3"),
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
        Check(source="seed 003 line 176", statement="Learning rate 0.01 makes the loss NaN",
              quantity=Diverged(where={"lr": 0.01}), op="=", value="all"),
        Check(source="seed 003 Table VIII", statement="Segmented images, test precision 0.9159",
              quantity=WinnerScore(metric="precision", group="Segmented images"), op="≈", value=0.9159, tolerance=0.02),
        Check(source="seed 003 Table VIII", statement="Segmented images, test recall 1.0",
              quantity=WinnerScore(metric="recall", group="Segmented images"), op="≈", value=1.0, tolerance=0.02),
        Check(source="seed 003 Table VIII", statement="Segmented images, test F1 0.9561",
              quantity=WinnerScore(metric="f1", group="Segmented images"), op="≈", value=0.9561, tolerance=0.02),
        Check(source="seed 003 Table VIII", statement="Segmented images, test mAP 0.9275",
              quantity=WinnerScore(metric="map50", group="Segmented images"), op="≈", value=0.9275, tolerance=0.02),
        Check(source="seed 003 line 302", statement="Segmentation before training gives the better model",
              quantity=BestGroup(metric="map50"), op="=", value="Segmented images"),
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
    checks=(Check(source="seed 003 line 176", statement="Learning rate 0.01 makes the loss NaN",
                  quantity=Diverged(where={"lr": 0.01}), op="=", value="all"),),
)


SWEEPS: Registry[SweepSpec] = Registry("sweep", entries={spec.name: spec for spec in (
    SweepSpec(
        name="bccd_imbalance",
        study="Blood-cell patch classification under class imbalance (STUDIES.md §1, seed 000)",
        study_tag="study1-seed000",
        trainable="classification",
        metric="val_macro_f1",
        asha=AshaSettings(grace_period=5),
        group_by=("weighted_loss", "oversampling"),
        report=BCCD_REPORT,
    ),
    SweepSpec(
        name="all_unet",
        study="Lymphoblast segmentation with U-Net, U-Net + FPN and U-Net + FPN + GELU (STUDIES.md §6, seed 004)",
        study_tag="study6-seed004",
        trainable="segmentation",
        metric="val_dice_per_image",
        asha=AshaSettings(grace_period=5),
        group_by=("model",),
        report=UNET_REPORT,
    ),
    SweepSpec(
        name="all_transfer",
        study="ALL subtype classification, a small CNN against VGG16 transfer learning (STUDIES.md §2, seed 001)",
        study_tag="study2-seed001",
        trainable="classification",
        metric="val_macro_f1",
        asha=AshaSettings(grace_period=5),
        group_by=("model",),
        report=ALL_TRANSFER_REPORT,
    ),
    SweepSpec(
        name="all_inception_nasnet",
        study="ALL classification with InceptionResNetV2 and NASNetLarge under two data-loading options "
              "(STUDIES.md §5, seed 004)",
        study_tag="study5-seed004",
        trainable="classification",
        metric="val_macro_f1",
        group_by=("model", "loading_option"),
        report=ALL_INCEPTION_REPORT,
    ),
    SweepSpec(
        name="chestmnist_binary",
        study="Cardiomegaly vs Pneumothorax on ChestMNIST with DenseNet-121, EfficientNet-B0 and MobileNetV3 "
              "(STUDIES.md §3, seed 002)",
        study_tag="study3-seed002",
        trainable="classification",
        metric="val_auc",
        group_by=("model",),
        report=CHESTMNIST_REPORT,
    ),
    SweepSpec(
        name="lymphoblast_maskrcnn",
        study="Lymphoblast detection and instance segmentation with Mask R-CNN, raw and segmented images "
              "(STUDIES.md §4, seed 003)",
        study_tag="study4-seed003",
        trainable="detection",
        metric="val_mask_map50",
        group_by=("preprocessing",),
        report=LYMPHOBLAST_REPORT,
    ),
    SweepSpec(
        name="bccd_detection",
        study="Blood-cell detection on BCCD's boxes with the study-4 trainable and axes (Faster R-CNN; STUDIES.md §4 "
              "runnable twin)",
        study_tag="study4-bccd",
        trainable="detection",
        metric="val_map50",
        group_by=("preprocessing",),
        report=BCCD_DETECTION_REPORT,
    ),
)})


def get_sweep(name: str) -> SweepSpec:
    """The spec registered as ``name``; unknown names list the valid ones."""
    return SWEEPS.get(name)
