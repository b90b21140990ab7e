"""A starter study file written from a ``DatasetSurvey`` (``python -m sweeps.new``).

The study is what a researcher would write by hand for a first sweep of their own data: the
task's trainable and selection metric, a model that suits the task, a small grid over the
learning rate and dropout, an image size chosen from the images' sizes, and the ``cpu`` and
``smoke`` profiles beside the full (GPU) settings. Every value carries a comment saying why,
citing the survey's figures where they decided it, so the file reads as its own documentation.
It is a study file like the built-in ones (``docs/study-files.md``) and runs unchanged.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from trainables.datasets.survey import DatasetSurvey

# Image sides a starter study picks from: the largest at or below the images' own size.
SIDES = (16, 24, 32, 48, 64, 96, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 800, 1024)
# The largest side a full-profile trial trains at, per task: ImageNet models' 224 for
# classification, a U-Net's usual 256 tiles, and BCCD-sized 640 pictures for detection.
LARGEST_SIDE = {"classification": 224, "segmentation": 256, "detection": 640}
# A class this many times rarer than the commonest turns on the class-weighted loss.
IMBALANCE_RATIO = 1.5
COMMENT_COLUMN = 36
# (key, value, why) lines of one profile section.
Entries = list[tuple[str, Any, str]]

REPORT_SECTIONS = {
    "classification": ("summary", "confusion_matrix", "classification_report", "roc_auc", "error_analysis",
                       "sample_predictions", "confirmation", "training_curves", "sweep", "trials", "environment"),
    "segmentation": ("summary", "segmentation_tables", "inference_settings", "confirmation", "training_curves",
                     "mask_grid", "sweep", "trials", "environment"),
    "detection": ("summary", "detection_performance", "count_mae", "inference_grid", "detection_images",
                  "confirmation", "training_curves", "sweep", "trials", "environment"),
}
METRICS = {
    "classification": ("val_macro_f1", "macro-F1 counts every class equally, so a rare class is not outvoted"),
    "segmentation": ("val_dice_per_image", "Dice per image, the mean over images (and over the foreground "
                                           "classes when there are several)"),
    "detection": ("val_map50", "COCO-style mAP at IoU 0.5, the usual detection score"),
}
CURVES = {"classification": ("val_accuracy",), "segmentation": ("val_dice_per_image", "val_iou_per_image"),
          "detection": ("val_map50", "val_f1")}


def study_name(text: str) -> str:
    """``text`` as a study name: lower case letters, digits, ``_`` and ``-`` (``My Smears`` →
    ``my_smears``)."""
    name = re.sub(r"[^a-z0-9_-]+", "_", text.lower()).strip("_-")
    return name or "my_study"


def chosen_side(survey: DatasetSurvey) -> tuple[int, str]:
    """The full profile's ``image_size`` and why: the largest of ``SIDES`` at or below the
    median short side of the images (long side for detection, whose images keep their shape),
    capped at the task's ``LARGEST_SIDE``."""
    measure = max if survey.task == "detection" else min
    which = "long" if survey.task == "detection" else "short"
    if not survey.image_sizes:
        return LARGEST_SIDE[survey.task], "no image size could be read; the task's usual size"
    median = statistics.median(measure(size) for size in survey.image_sizes)
    cap = LARGEST_SIDE[survey.task]
    side = max([s for s in SIDES if s <= min(median, cap)], default=SIDES[0])
    reason = f"median {which} side {median:g} px"
    return side, (f"{reason}, capped at {cap} for {survey.task}" if median > cap else reason)


def size_summary(sizes: Iterable[tuple[int, int]]) -> str:
    """The commonest image sizes, ``640x480 (300), 512x512 (12)``."""
    common = Counter(sizes).most_common(3)
    return ", ".join(f"{w}x{h} ({n})" for (w, h), n in common) or "none read"


def class_totals(survey: DatasetSurvey) -> dict[str, int]:
    """Items per class over every split, in class order."""
    totals = {name: 0 for name in survey.class_names}
    for per_class in survey.counts.values():
        for name, count in per_class.items():
            totals[name] = totals.get(name, 0) + count
    return totals


def _scalar(value: Any) -> str:
    """``value`` as a one-line YAML flow scalar or collection."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, allow_unicode=True).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


@dataclass
class _Writer:
    """Collects the file's lines: ``key: value`` entries with their comment aligned."""

    lines: list[str]

    def comment(self, text: str = "") -> None:
        self.lines.append(f"# {text}".rstrip())

    def blank(self) -> None:
        self.lines.append("")

    def section(self, key: str, why: str = "", indent: int = 0) -> None:
        """``key:`` opening a nested mapping."""
        self._line(" " * indent + f"{key}:", why)

    def entry(self, key: str, value: Any, why: str, indent: int = 0) -> None:
        self._line(" " * indent + f"{key}: {_scalar(value)}", why)

    def _line(self, text: str, why: str) -> None:
        self.lines.append(f"{text.ljust(COMMENT_COLUMN - 1)} # {why}" if why else text)


def starter_study(survey: DatasetSurvey, *, name: str, command: str) -> str:
    """The text of a starter study file for the surveyed data (``command`` is how it was made,
    quoted in its header)."""
    out = _Writer([])
    _header(out, survey, name, command)
    _study_sections(out, survey, name)
    out.blank()
    out.comment("---- the search space ----")
    out.blank()
    _data(out, survey)
    _TASK_WRITERS[survey.task](out, survey)
    return "\n".join(out.lines) + "\n"


def _header(out: _Writer, survey: DatasetSurvey, name: str, command: str) -> None:
    totals = class_totals(survey)
    items = "instances" if survey.task == "detection" else "images"
    out.comment(f"{name} — a starter {survey.task} study written by `{command}`.")
    out.comment("Edit anything; docs/own-data.md explains each choice and docs/study-files.md the format.")
    out.comment(f"What medsweep found in {survey.root}:")
    out.comment(f"  layout: {survey.layout}")
    out.comment(f"  {len(survey.class_names)} classes, {items}: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
    if len(survey.counts) > 1 or "all" not in survey.counts:
        for split, per_class in survey.counts.items():
            out.comment(f"    {split}: " + ", ".join(f"{k} {v}" for k, v in per_class.items()))
    out.comment(f"  image sizes (width x height, commonest): {size_summary(survey.image_sizes)}; "
                f"{'grey' if survey.channels == 1 else 'colour'}")
    for note in survey.notes:
        out.comment(f"  {note}")
    if survey.problems:
        out.comment(f"  {len(survey.problems)} file(s) will be left out (python -m sweeps.run FILE --check-data lists "
                    f"them all):")
        for problem in survey.problems[:10]:
            out.comment(f"    {problem}")
    out.comment("Run: python -m sweeps.run THIS_FILE --check-data, then --plan, then without either; then "
                "python -m analysis.report runs/<experiment>.")
    out.blank()


def _study_sections(out: _Writer, survey: DatasetSurvey, name: str) -> None:
    task = survey.task
    metric, why_metric = METRICS[task]
    out.section("study")
    out.entry("name", name, "the name on the command line and of the experiment folders", 2)
    out.entry("title", f"{name}: {task} of {', '.join(survey.class_names)}", "the report's title", 2)
    out.entry("tag", name, "W&B runs and experiments carry it", 2)
    out.entry("trainable", task, f"the {survey.format} format holds a {task} task", 2)
    out.entry("metric", metric, why_metric, 2)
    out.blank()
    out.section("asha", "ASHA's early stopping in the full profile: rungs at 5, 15, 45 epochs")
    out.entry("grace_period", 5, "every trial gets 5 epochs before it can be stopped", 2)
    out.entry("reduction_factor", 3, "a third of the trials go on at each rung", 2)
    out.blank()
    out.section("resources", "per trial")
    out.entry("full", {"cpus": 4, "gpus": 1}, "a GPU and 4 CPUs for its data loaders", 2)
    out.entry("cpu", {"cpus": 1, "gpus": 0}, "without a GPU, one core per trial", 2)
    out.blank()
    group = "backbone" if task == "detection" else "model"
    out.entry("group_by", [group], f"the report compares the {group}s (add {group}s to the grid to compare several)")
    out.blank()
    out.section("wandb", "where --wandb logs")
    out.entry("project", "medsweep", "W&B project", 2)
    out.entry("entity", None, "your W&B user or team (null: the default)", 2)
    out.blank()
    out.section("report", "python -m analysis.report: the winner confirmed on the test split")
    out.entry("document", f"{name} starter study", "cited in table captions", 2)
    out.entry("sections", list(REPORT_SECTIONS[task]), f"the report's sections for {task} (analysis/sections)", 2)
    out.entry("curves", list(CURVES[task]), "validation metrics drawn beside the selection metric", 2)


def _data(out: _Writer, survey: DatasetSurvey) -> None:
    side, why_side = chosen_side(survey)
    out.section("data")
    out.entry("dataset", survey.format, "the generic format this folder is in", 2)
    for key, value in survey.options.items():
        out.entry(key, value, _OPTION_REASONS.get(key, "as sweeps.new found it"), 2)
    out.entry("image_size", side, why_side, 2)
    if not survey.fixed_splits:
        out.entry("split_fractions", [0.7, 0.15, 0.15], "no split folders: train/val/test made here, seeded", 2)
    out.blank()


_OPTION_REASONS = {
    "root": "the folder surveyed (absolute, so the study runs from anywhere)",
    "csv": "the CSV listing path,label[,split]",
    "classes": "mask value → class name, from the values found in the masks (rename freely)",
    "annotations": "the COCO file read",
    "images": "the images folder, relative to root",
    "masks": "the masks folder, relative to root",
}


def _classification(out: _Writer, survey: DatasetSurvey) -> None:
    totals = [n for n in class_totals(survey).values() if n > 0]
    ratio = max(totals) / min(totals) if totals else 1.0
    out.section("fixed")
    out.entry("model", "resnet18", "timm ResNet-18 (any timm model name works): small, strong on cell images", 2)
    out.entry("pretrained", True, "ImageNet weights (offline: --set pretrained_path=FILE or pretrained=false)", 2)
    out.entry("optimizer", "adamw", "AdamW, the usual choice for fine-tuning", 2)
    out.entry("weight_decay", 1.0e-4, "mild regularisation", 2)
    out.entry("batch_size", 32, "fits a GPU at 224 px", 2)
    out.entry("eval_batch_size", 64, "evaluation speed only", 2)
    out.entry("max_epochs", 45, "ASHA's top rung (5, 15, 45)", 2)
    if ratio >= IMBALANCE_RATIO:
        out.entry("weighted_loss", True, f"classes are imbalanced ({ratio:.1f} : 1): rare classes weigh more", 2)
    else:
        out.entry("weighted_loss", False, f"classes are balanced ({ratio:.1f} : 1)", 2)
    out.entry("augment", "segmentation_flips", "flips and right-angle turns: cells have no up or left", 2)
    out.entry("early_stopping_patience", 8, "stop after 8 epochs without a better val metric", 2)
    out.entry("plateau_patience", 3, "halve the lr after 3 flat epochs", 2)
    out.entry("seed", 42, "the same data order and initialisation on a rerun", 2)
    out.blank()
    out.section("grid", "every combination is a trial: 3 x 2 = 6")
    out.entry("lr", [1.0e-3, 3.0e-4, 1.0e-4], "AdamW's usual range for fine-tuning", 2)
    out.entry("dropout", [0.0, 0.3], "none, or some before the classifier", 2)
    out.blank()
    out.section("profiles", "python -m sweeps.run picks cpu without a GPU; --smoke adds smoke on top")
    out.section("cpu", "2 cores, no GPU, offline: minutes per trial", 2)
    out.section("data", "", 4)
    _profile_side(out, survey, 64, "small images for the CPU")
    out.section("fixed", "", 4)
    out.entry("pretrained", False, "no weight download offline", 6)
    out.entry("epoch_samples", 512, "an epoch is 512 random training images", 6)
    out.entry("max_epochs", 12, "ASHA rungs at 2, 6, 12", 6)
    out.entry("early_stopping_patience", 4, "scaled with the shorter budget", 6)
    out.entry("plateau_patience", 2, "scaled with the shorter budget", 6)
    out.section("grid", "", 4)
    out.entry("lr", [1.0e-3, 3.0e-4], "from scratch a higher lr moves faster", 6)
    out.entry("asha", {"grace_period": 2, "reduction_factor": 3}, "rungs at 2 and 6 epochs", 4)
    _smoke(out, [("image_size", min(32, chosen_side(survey)[0]), "tiny input"),
                 ("images_per_split", 8, "8 images per split")],
           [("epoch_samples", 32, "two batches per epoch"), ("batch_size", 16, "small batches"),
            ("max_epochs", 2, "two epochs, the ASHA rung at epoch 1")],
           [("lr", [1.0e-3], "one lr"), ("dropout", [0.0, 0.3], "two trials, so ASHA has something to compare")])


def _segmentation(out: _Writer, survey: DatasetSurvey) -> None:
    classes = len(survey.class_names)
    out.section("fixed")
    out.entry("model", "unet", "U-Net (also unet_fpn, unet_fpn_gelu)", 2)
    out.entry("pretrained", False, "the U-Nets train from scratch", 2)
    out.entry("base_channels", 32, "32 → 512 channels over four levels", 2)
    out.entry("optimizer", "adam", "Adam, the usual U-Net optimiser", 2)
    loss_why = ("binary cross-entropy per pixel" if classes <= 2
                else f"per-pixel cross-entropy over the {classes} classes")
    out.entry("loss", "bce", loss_why + " (dice and bce_dice also available)", 2)
    out.entry("batch_size", 16, "fits a GPU at 256 px", 2)
    out.entry("eval_batch_size", 16, "evaluation speed only", 2)
    out.entry("max_epochs", 45, "ASHA's top rung (5, 15, 45)", 2)
    out.entry("augment", "segmentation_flips", "flips and right-angle turns of image and mask together", 2)
    out.entry("threshold", 0.5, "binary masks' cut-off while training; the report tunes it on validation", 2)
    out.entry("early_stopping_patience", 10, "stop after 10 epochs without a better val Dice", 2)
    out.entry("plateau_patience", 5, "halve the lr after 5 flat epochs", 2)
    out.entry("seed", 42, "the same data order and initialisation on a rerun", 2)
    out.blank()
    out.section("grid", "every combination is a trial: 2 x 2 = 4")
    out.entry("lr", [1.0e-3, 1.0e-4], "Adam's usual range for U-Nets", 2)
    out.entry("dropout", [0.0, 0.2], "none, or some in every block", 2)
    out.blank()
    out.section("profiles", "python -m sweeps.run picks cpu without a GPU; --smoke adds smoke on top")
    out.section("cpu", "2 cores, no GPU: minutes per trial", 2)
    out.section("data", "", 4)
    _profile_side(out, survey, 64, "small images for the CPU")
    out.section("fixed", "", 4)
    out.entry("base_channels", 16, "a narrower U-Net for the CPU", 6)
    out.entry("epoch_samples", 256, "an epoch is 256 random training images", 6)
    out.entry("max_epochs", 12, "ASHA rungs at 2, 6, 12", 6)
    out.entry("early_stopping_patience", 4, "scaled with the shorter budget", 6)
    out.entry("plateau_patience", 2, "scaled with the shorter budget", 6)
    out.entry("asha", {"grace_period": 2, "reduction_factor": 3}, "rungs at 2 and 6 epochs", 4)
    _smoke(out, [("image_size", min(32, chosen_side(survey)[0]), "tiny input"),
                 ("images_per_split", 8, "8 images per split")],
           [("base_channels", 8, "a tiny U-Net"), ("epoch_samples", 32, "four batches per epoch"),
            ("batch_size", 8, "small batches"), ("max_epochs", 2, "two epochs, the ASHA rung at epoch 1")],
           [("lr", [1.0e-3], "one lr"), ("dropout", [0.0, 0.2], "two trials, so ASHA has something to compare")])


def _detection(out: _Writer, survey: DatasetSurvey) -> None:
    images = len(survey.image_sizes)
    train_images = max(1, round(images * 0.7))
    out.section("fixed")
    out.entry("backbone", "resnet50", "ResNet-50 FPN R-CNN (Mask R-CNN when the file has masks, else Faster)", 2)
    out.entry("pretrained", True, "COCO weights (offline: --set pretrained_path=FILE or pretrained=false)", 2)
    out.entry("optimizer", "sgd", "SGD with momentum 0.9, as torchvision's detection references", 2)
    out.entry("weight_decay", 1.0e-4, "torchvision's detection references", 2)
    out.entry("batch_size", 2, "two images per step", 2)
    out.entry("max_epochs", 45, "ASHA's top rung (5, 15, 45)", 2)
    out.entry("steps_per_epoch", max(10, math.ceil(train_images / 2)),
              f"about one pass over ~70% of the {images} images, two per step", 2)
    out.entry("validation_steps", max(10, round(images * 0.15)), "about every validation image", 2)
    out.entry("detection_min_confidence", 0.5, "boxes scored below this are not counted", 2)
    out.entry("flips", True, "random flips: cells have no up or left", 2)
    out.entry("max_detections", 100, "boxes kept per image", 2)
    out.entry("early_stopping_patience", 10, "stop after 10 epochs without a better val mAP", 2)
    out.entry("plateau_patience", 5, "halve the lr after 5 flat epochs", 2)
    out.entry("seed", 42, "the same data order and initialisation on a rerun", 2)
    out.blank()
    out.section("grid", "every combination is a trial: 2 trials")
    out.entry("lr", [1.0e-3, 1.0e-2], "SGD's usual range for R-CNNs (the R-CNNs take no dropout)", 2)
    out.blank()
    out.section("profiles", "python -m sweeps.run picks cpu without a GPU; --smoke adds smoke on top")
    out.section("cpu", "2 cores, no GPU, offline: minutes per trial", 2)
    out.section("data", "", 4)
    _profile_side(out, survey, 320, "smaller pictures for the CPU")
    out.section("fixed", "", 4)
    out.entry("pretrained", False, "no weight download offline", 6)
    out.entry("batch_size", 1, "one image per step on the CPU", 6)
    out.entry("steps_per_epoch", 8, "short epochs", 6)
    out.entry("validation_steps", 8, "eight validation images", 6)
    out.entry("max_epochs", 6, "ASHA rungs at 2 and 4 epochs", 6)
    out.entry("early_stopping_patience", 3, "scaled with the shorter budget", 6)
    out.entry("plateau_patience", 2, "scaled with the shorter budget", 6)
    out.entry("asha", {"grace_period": 2, "reduction_factor": 2}, "rungs at 2 and 4 epochs", 4)
    _smoke(out, [("image_size", min(128, chosen_side(survey)[0]), "small pictures"),
                 ("images_per_split", 4, "4 images per split")],
           [("steps_per_epoch", 2, "two steps per epoch"), ("validation_steps", 4, "the four validation images"),
            ("max_epochs", 2, "two epochs, the ASHA rung at epoch 1")],
           [("lr", [1.0e-3], "one trial: an R-CNN step is slow on a CPU")])


def _profile_side(out: _Writer, survey: DatasetSurvey, side: int, why: str) -> None:
    """A profile's ``image_size``: ``side``, or the full profile's when that is smaller."""
    full = chosen_side(survey)[0]
    out.entry("image_size", min(side, full), why if side <= full else "the images' own size: already small", 6)


def _smoke(out: _Writer, data: Entries, fixed: Entries, grid: Entries) -> None:
    """The smoke profile, on top of cpu: seconds per trial, for trying the study out and for tests."""
    out.section("smoke", "--smoke: seconds per trial, to try the whole cycle; still Ray Tune + ASHA", 2)
    for section, entries in (("data", data), ("fixed", fixed), ("grid", grid)):
        out.section(section, "", 4)
        for key, value, why in entries:
            out.entry(key, value, why, 6)
    out.entry("asha", {"grace_period": 1, "reduction_factor": 2}, "a rung at epoch 1", 4)


_TASK_WRITERS = {"classification": _classification, "segmentation": _segmentation, "detection": _detection}
