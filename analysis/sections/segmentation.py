"""Sections of segmentation studies: seed 004's test table per model, the inference settings
tuned on validation outputs, and a grid of predicted masks. Binary studies (background and one
class) threshold their probabilities at tuned settings; multi-class ones (more classes) take
each pixel's most probable class (argmax), so they have nothing tuned, and show every
foreground class's Dice and IoU beside their mean."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import figures
from analysis.document import Block, Figure, Heading, Paragraph, Table
from analysis.rerun import CHECKPOINT

from .base import ReportContext, estimate_mean, estimate_percent, not_evaluated, per_group_trial_tables, section

SEGMENTATION_COLUMNS = (("Accuracy", "accuracy_pooled"), ("Loss", "loss"), ("Precision", "precision_pooled"),
                        ("Recall", "recall_pooled"), ("IoU pooled", "iou_pooled"), ("IoU per image", "iou_per_image"),
                        ("Dice pooled", "dice_pooled"), ("Dice per image", "dice_per_image"))
# A multi-class study's columns: the loss and the means over foreground classes, then per class.
MULTICLASS_COLUMNS = (("Loss", "loss"), ("IoU pooled", "iou_pooled"), ("IoU per image", "iou_per_image"),
                      ("Dice pooled", "dice_pooled"), ("Dice per image", "dice_per_image"))
ARGMAX = "argmax"


def is_multiclass(context: ReportContext) -> bool:
    """Whether the study's masks have more classes than background and one foreground class."""
    return len(context.class_names) > 2


def table_columns(context: ReportContext) -> tuple[tuple[str, str], ...]:
    """(label, test metric) of the per-model table: the binary scores, or for a multi-class
    study the loss, the mean Dice and IoU and each foreground class's."""
    if not is_multiclass(context):
        return SEGMENTATION_COLUMNS
    per_class = tuple((f"{label} {name}", f"{metric}_{name}") for name in context.class_names[1:]
                      for label, metric in MULTICLASS_COLUMNS[1:])
    return MULTICLASS_COLUMNS + per_class


def inference_text(context: ReportContext, inference: dict) -> str:
    """How a model's masks were made: its tuned threshold and minimum size, or argmax."""
    if is_multiclass(context):
        return ARGMAX
    return f"{inference.get('threshold', 0.5)} / {inference.get('min_size', 0)} px"


def table_paragraph(context: ReportContext) -> str:
    """What the per-model tables show, and how their masks were made."""
    if not is_multiclass(context):
        return ("Every trial's best sweep checkpoint on the test split, in % like the document; the loss is the "
                "mean per-image BCE. Pooled scores count pixels over the whole split; per-image scores average "
                "each image's own score (an image with no cell pixels that stays empty scores 1). Masks use the "
                "threshold and smallest component tuned on that model's validation outputs (last column).")
    return ("Every trial's best sweep checkpoint on the test split, in %; the loss is the mean per-image "
            "cross-entropy. Masks are each pixel's most probable class (argmax, nothing tuned). Each foreground "
            f"class ({', '.join(context.class_names[1:])}) is scored against every other class; the columns "
            "without a class name are the unweighted means over the foreground classes. Pooled scores count "
            "pixels over the whole split; per-image scores average each image's own score (an image where a "
            "class is neither present nor predicted scores 1 for that class).")


@section("segmentation_tables", needs="confirmation")
def segmentation_tables(context: ReportContext) -> list[Block]:
    """Seed 004's table per model: every lr x dropout trial on the test split (%)."""
    columns = table_columns(context)
    masks_column = "Masks" if is_multiclass(context) else "Threshold / min size"

    def row(trial: pd.Series) -> dict[str, str]:
        models = context.confirmation.predictions.get((trial["trial_id"], CHECKPOINT))
        if not models:
            return {**{label: not_evaluated(trial) for label, _ in columns}, masks_column: "—"}
        cells = {}
        for label, metric in columns:
            e = context.estimate(trial["trial_id"], metric, CHECKPOINT)
            cells[label] = estimate_mean(e, 4) if metric == "loss" else estimate_percent(e, 2)
        cells[masks_column] = inference_text(context, models[0].inference)
        return cells

    return [Heading("Test results per model"), Paragraph(table_paragraph(context)),
            *per_group_trial_tables(context, caption="segmentation report on test (%)", row=row)]


@section("inference_settings", needs="confirmation")
def inference_settings(context: ReportContext) -> list[Block]:
    """The inference settings tuned on validation outputs for every confirmed model; a
    multi-class study says its masks are the argmax instead."""
    if is_multiclass(context):
        return [Heading("Inference settings"),
                Paragraph("Multi-class masks are each pixel's most probable class (argmax) for every model: there "
                          "is no threshold or smallest component to tune on validation outputs.")]
    rows = []
    for (trial_id, kind), models in sorted(context.confirmation.predictions.items()):
        if trial_id not in context.winners.candidate_ids:
            continue
        for model in models:
            if model.inference:
                rows.append({"Trial": trial_id, "Model": kind if model.seed is None else f"{kind}, seed {model.seed}",
                             **{k.replace("_", " ").capitalize(): v for k, v in model.inference.items()}})
    if not rows:
        return []
    return [Heading("Inference settings tuned on validation outputs"),
            Paragraph("Chosen once per model on the validation split's cached outputs (no retraining), then applied "
                      "to the test split."),
            Table(pd.DataFrame(rows), caption="Tuned per model")]


@section("mask_grid", needs="checkpoint")
def mask_grid(context: ReportContext) -> list[Block]:
    """Test images with true and predicted masks, worst cases by Dice first (for a multi-class
    study each image's mean Dice over the foreground classes, every class in its own colour)."""
    from trainables.metrics import argmax_masks, binarize, class_mask_counts, scores_from_counts

    winner = context.winners.overall
    model = context.confirmation.predictions[(winner, CHECKPOINT)][0]
    test = context.confirmation.test
    names, multiclass = context.class_names, is_multiclass(context)
    predicted = argmax_masks(model.outputs) if multiclass else binarize(model.outputs, **model.inference)
    dice = scores_from_counts(class_mask_counts(test.labels, predicted, len(names)))["dice"].mean(axis=1)
    worst = list(np.argsort(dice, kind="stable")[:4])
    rest = [i for i in np.random.default_rng(0).permutation(len(dice)) if i not in worst][:4]
    chosen = np.array(worst + rest, dtype=np.int64)
    truth = test.labels[chosen] if multiclass else test.labels[chosen].astype(bool)
    path = figures.mask_overlays(test.images[chosen], truth, predicted[chosen], dice[chosen],
                                 context.figures_dir / "mask_overlays.png", class_names=names if multiclass else None)
    drawn = ("each foreground class in its own colour (legend), its true region outlined and its predicted region "
             "tinted; the first {} are the worst by mean Dice over the classes" if multiclass
             else "true mask outlined green, predicted red; the first {} are the worst by Dice")
    return [Heading("Predicted masks"),
            Figure(path, f"Winner {winner} on test images: {drawn.format(len(worst))}, the others random")]
