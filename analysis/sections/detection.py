"""Sections of detection studies (study 4, seed 003): validation mAP per detection confidence,
detection performance (with COCO's box and mask AP) and automatic counting at the inference
setting tuned on validation, the inference-time grid, and images with the winner's detections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis import figures
from analysis.document import Block, Figure, Heading, Paragraph, Table
from analysis.rerun import CHECKPOINT

from .base import ReportContext, estimate_text, number, other_axes, section

DETECTION_SCORES = (("Precision", "precision"), ("Recall", "recall"), ("Accuracy", "accuracy"), ("F1-Score", "f1"),
                    ("mAP@0.5", "map50"))
# Mask AP@0.5 of a Mask R-CNN on the test split, bootstrapped from the cached candidates' masks
# (``mask_average_precision_50``) as the box scores are.
MASK_SCORES = (("Mask AP@0.5", "mask_map50"),)
# COCO's other APs (``coco_average_precision``), the mask ones for a Mask R-CNN only.
COCO_SCORES = (("Box AP@[.50:.95]", "box_map"), ("Mask AP@0.5", "mask_map50"), ("Mask AP@[.50:.95]", "mask_map"))
# What each selection metric a detection sweep may have is: (table label, description).
SELECTION_METRICS = {"val_map50": ("mAP@0.5", "box AP@0.5"), "val_mask_map50": ("mask mAP@0.5", "mask AP@0.5")}


def selection_metric(context: ReportContext) -> tuple[str, str]:
    """The sweep's metric as (table label, description), e.g. ("mask mAP@0.5", "mask AP@0.5")."""
    metric = context.experiment.metric
    return SELECTION_METRICS.get(metric, (metric, metric))


def group_winners_with_checkpoints(context: ReportContext) -> list[tuple[tuple, str]]:
    """Each group's winner whose sweep checkpoint was evaluated on the test split."""
    return [(key, trial_id) for key, trial_id in context.winners.per_group.items()
            if (trial_id, CHECKPOINT) in context.confirmation.predictions]


@section("confidence_tables", needs="winner")
def confidence_tables(context: ReportContext) -> list[Block]:
    """Seed 003 Tables III and IV: validation mAP per detection minimum confidence (the training
    setting), for each preprocessing variant; each row is the best trial with that confidence."""
    trials, metric = context.experiment.trials, f"best_{context.experiment.metric}"
    label, description = selection_metric(context)
    blocks: list[Block] = [Heading("Validation mAP per detection minimum confidence"),
                           Paragraph(f"The sweep selected trials by validation {description} "
                                     f"({context.experiment.metric}). The document trained one model per confidence "
                                     f"with the other settings fixed; here every confidence is crossed with the other "
                                     f"axes, so each row shows the best trial at that confidence and the settings it "
                                     f"had.")]
    for variant in sorted(trials["config/preprocessing"].dropna().unique()):
        rows = []
        for confidence in sorted(trials["config/detection_min_confidence"].dropna().unique()):
            subset = trials[(trials["config/preprocessing"] == variant)
                            & (trials["config/detection_min_confidence"] == confidence)]
            finite = subset[np.isfinite(subset[metric].astype(float))]
            if finite.empty:
                reasons = ", ".join(f"{n} {r}" for r, n in subset["stop_reason"].value_counts().items())
                rows.append({"Detection minimum confidence": confidence, f"Val {label}": f"— ({reasons})",
                             "Trial": "—", "Other settings": "—"})
                continue
            best = finite.loc[finite[metric].astype(float).idxmax()]
            others = other_axes(context, best["trial_id"], besides=("detection_min_confidence",))
            rows.append({"Detection minimum confidence": confidence, f"Val {label}": number(float(best[metric]), 4),
                         "Trial": best["trial_id"], "Other settings": others})
        name = context.group_name((variant,))
        blocks.append(Table(pd.DataFrame(rows), caption=f"{name}: val {label} per detection minimum confidence",
                            source=context.cite("confidence_tables")))
    return blocks


@section("detection_performance", needs="confirmation")
def detection_performance(context: ReportContext) -> list[Block]:
    """Seed 003 Tables VII and VIII: each preprocessing variant's best model on the validation
    and the test split, at the inference setting tuned on validation."""
    from trainables.detection import checkpoint_coco_scores
    from trainables.detection_inference import carries_masks

    validation, test, coco = [], [], []
    for key, trial_id in group_winners_with_checkpoints(context):
        model = context.confirmation.predictions[(trial_id, CHECKPOINT)][0]
        chosen = model.inference
        grid = pd.DataFrame(model.training.get("inference_grid", []))
        at = grid[np.isclose(grid["min_confidence"], chosen["min_confidence"])
                  & np.isclose(grid["nms_iou"], chosen["nms_iou"])].iloc[0]
        name = {"Dataset": context.group_name(key), "Trial": trial_id,
                "Confidence / NMS": f"{chosen['min_confidence']:g} / {chosen['nms_iou']:g}"}
        validation.append({**name, **{label: number(float(at[metric]), 4) for label, metric in DETECTION_SCORES}})
        tested = (*DETECTION_SCORES, *MASK_SCORES) if carries_masks(model.outputs) else DETECTION_SCORES
        test.append({**name, **{label: estimate_text(context.estimate(trial_id, metric, CHECKPOINT), digits=4)
                                for label, metric in tested}})
        scores = checkpoint_coco_scores(Path(context.trial(trial_id)["best_checkpoint"]),
                                        context.confirmation.test_of(trial_id), **chosen)
        coco.append({**name, **{label: number(scores[metric], 4) for label, metric in COCO_SCORES if metric in scores}})
    if not validation:
        return []
    _, description = selection_metric(context)
    return [Heading("Detection performance"),
            Paragraph(f"Each preprocessing variant's best trial (by validation {description} during training, "
                      f"{context.experiment.metric}), its best checkpoint evaluated at the detection confidence "
                      f"and NMS IoU chosen on the validation split by box mAP@0.5 "
                      f"(inference-time grid below, no retraining). "
                      f"Matches need IoU ≥ 0.5 and the same class; accuracy is TP / (TP + FP + FN) as the document "
                      f"defines it. Test intervals resample test images; a Mask R-CNN's test mask AP@0.5 is "
                      f"bootstrapped from the same detections' masks (probability above 0.5)."),
            Table(pd.DataFrame(validation), caption="Performance on the validation split",
                  source=context.cite("validation_performance")),
            Table(pd.DataFrame(test), caption="Performance on the test split", source=context.cite("test_performance")),
            Paragraph("COCO's average precision of the same models on the test split, by pycocotools' COCOeval: "
                      "boxes averaged over IoU 0.50:0.95 and, for Mask R-CNN, masks (probability above 0.5) at IoU "
                      "0.5 and averaged over 0.50:0.95; area all, at most 100 detections per image and class; "
                      "point values, without resampling."),
            Table(pd.DataFrame(coco), caption="COCO AP on the test split", source=context.cite("test_performance"))]


@section("count_mae", needs="confirmation")
def count_mae(context: ReportContext) -> list[Block]:
    """Seed 003 Table X: per class the annotated and the automatic count on the test split and
    the mean absolute count error per image; the per-image counts go to a CSV next to the report."""
    from trainables.detection_inference import candidate_boxes, postprocess
    from trainables.metrics import count_table

    rows, files = [], []
    for key, trial_id in group_winners_with_checkpoints(context):
        model = context.confirmation.predictions[(trial_id, CHECKPOINT)][0]
        test = context.confirmation.test_of(trial_id)
        detections = postprocess(candidate_boxes(model.outputs), **model.inference)
        counts = pd.DataFrame(count_table(test.labels, detections, context.class_names,
                                          min_confidence=model.inference["min_confidence"]))
        counts.insert(1, "source", test.sources[counts["image"].to_numpy()])
        path = context.figures_dir.parent / f"counts_{'_'.join(map(str, key)) or 'all'}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        counts.to_csv(path, index=False)
        files.append(path.name)
        for name in context.class_names:
            rows.append({"Dataset": context.group_name(key), "Class": name,
                         "Actual count": int(counts[f"actual_{name}"].sum()),
                         "Automatic count": int(counts[f"automatic_{name}"].sum()),
                         "MAE per image": estimate_text(context.estimate(trial_id, f"count_mae_{name}", CHECKPOINT))})
    if not rows:
        return []
    return [Heading("Automatic counting"),
            Paragraph(f"Cells counted per class on the test split by each variant's best model at its tuned "
                      f"setting, against the annotations. Per-image counts: {', '.join(files)}."),
            Table(pd.DataFrame(rows), caption="Count error per class (test split)", source=context.cite("count_mae"))]


@section("inference_grid", needs="confirmation")
def inference_grid_section(context: ReportContext) -> list[Block]:
    """The inference-time sweep of each variant's best model: validation mAP@0.5 over detection
    confidence × NMS IoU, computed on cached candidates without retraining."""
    from trainables.detection_inference import cap_warning

    blocks: list[Block] = []
    for key, trial_id in group_winners_with_checkpoints(context):
        model = context.confirmation.predictions[(trial_id, CHECKPOINT)][0]
        grid = pd.DataFrame(model.training.get("inference_grid", []))
        if grid.empty:
            continue
        name = context.group_name(key)
        path = figures.inference_heatmap(grid, "map50", model.inference,
                                         context.figures_dir / f"inference_grid_{'_'.join(map(str, key))}.png",
                                         f"{name}, trial {trial_id}: validation mAP@0.5")
        blocks.append(Figure(path, f"{name}: inference-time grid on the validation split (chosen setting framed)"))
        warning = cap_warning(grid)
        if warning:
            blocks.append(Paragraph(f"{name}, trial {trial_id}: {warning}"))
    if not blocks:
        return []
    return [Heading("Inference-time grid"),
            Paragraph("The trained model ran once over the validation split keeping every candidate detection before "
                      "score thresholding and NMS; each grid point replays thresholding and NMS on those cached "
                      "candidates (seed 003 found NMS 0.20 best at inference)."), *blocks]


@section("detection_images", needs="checkpoint")
def detection_images(context: ReportContext) -> list[Block]:
    """Test images with the winner's detections (boxes, masks where the model has them, scores)."""
    from trainables.detection import checkpoint_masks

    winner = context.winners.overall
    model = context.confirmation.predictions[(winner, CHECKPOINT)][0]
    test = context.confirmation.test_of(winner)
    indices = list(range(min(6, len(test))))
    predictions = checkpoint_masks(Path(context.trial(winner)["best_checkpoint"]), test, indices, **model.inference)
    truths = [{"boxes": test.boxes[i], "source": test.sources[i]} for i in indices]
    path = figures.detection_grid([test.images[i] for i in indices], predictions, truths, context.class_names,
                                  context.figures_dir / "detections.png")
    return [Heading("Predicted images"),
            Figure(path, f"Winner {winner} on test images at confidence {model.inference['min_confidence']:g} and "
                         f"NMS IoU {model.inference['nms_iou']:g} (dashed white: annotated boxes)")]
