"""Sections of segmentation studies: seed 004's test table per model, the inference settings
tuned on validation outputs, and a grid of predicted masks."""

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


@section("segmentation_tables", needs="confirmation")
def segmentation_tables(context: ReportContext) -> list[Block]:
    """Seed 004's table per model: every lr x dropout trial on the test split (%)."""
    def row(trial: pd.Series) -> dict[str, str]:
        models = context.confirmation.predictions.get((trial["trial_id"], CHECKPOINT))
        if not models:
            return {**{label: not_evaluated(trial) for label, _ in SEGMENTATION_COLUMNS}, "Threshold / min size": "—"}
        cells = {}
        for label, metric in SEGMENTATION_COLUMNS:
            e = context.estimate(trial["trial_id"], metric, CHECKPOINT)
            cells[label] = estimate_mean(e, 4) if metric == "loss" else estimate_percent(e, 2)
        inference = models[0].inference
        cells["Threshold / min size"] = f"{inference.get('threshold', 0.5)} / {inference.get('min_size', 0)} px"
        return cells

    return [Heading("Test results per model"),
            Paragraph("Every trial's best sweep checkpoint on the test split, in % like the document; the loss is the "
                      "mean per-image BCE. Pooled scores count pixels over the whole split; per-image scores average "
                      "each image's own score (an image with no cell pixels that stays empty scores 1). Masks use the "
                      "threshold and smallest component tuned on that model's validation outputs (last column)."),
            *per_group_trial_tables(context, caption="segmentation report on test (%)", row=row)]


@section("inference_settings", needs="confirmation")
def inference_settings(context: ReportContext) -> list[Block]:
    """The inference settings tuned on validation outputs for every confirmed model."""
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
    """Test images with true and predicted masks, worst cases by Dice first."""
    from trainables.metrics import binarize, mask_counts, scores_from_counts

    winner = context.winners.overall
    model = context.confirmation.predictions[(winner, CHECKPOINT)][0]
    test = context.confirmation.test
    predicted = binarize(model.outputs, **model.inference)
    dice = scores_from_counts(mask_counts(test.labels, predicted))["dice"]
    worst = list(np.argsort(dice, kind="stable")[:4])
    rest = [i for i in np.random.default_rng(0).permutation(len(dice)) if i not in worst][:4]
    chosen = np.array(worst + rest, dtype=np.int64)
    path = figures.mask_overlays(test.images[chosen], test.labels[chosen].astype(bool), predicted[chosen],
                                 dice[chosen], context.figures_dir / "mask_overlays.png")
    return [Heading("Predicted masks"),
            Figure(path, f"Winner {winner} on test images: true mask outlined green, predicted red; the first "
                         f"{len(worst)} are the worst by Dice, the others random")]
