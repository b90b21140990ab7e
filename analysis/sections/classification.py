"""Sections of classification studies: the winner's confusion matrix, classification report,
ROC-AUC, error analysis and sample predictions, the ablation of compared arms with its
factorial findings, the per-trial tables of seed 004, and the model comparison (each group's
winner with its size and speed beside its test scores)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import figures
from analysis.document import Block, Bullets, Figure, Heading, Paragraph, Table
from analysis.rerun import CHECKPOINT, RETRAINED, metric_on_test
from analysis.stats import Estimate
from sweeps.summary import STOPPED_BY_ASHA
from trainables.metrics import confusion_matrix, row_normalised

from .base import (
    ReportContext,
    epochs_with_reason,
    estimate_mean,
    estimate_percent,
    estimate_text,
    not_evaluated,
    number,
    other_axes,
    per_group_trial_tables,
    percent,
    section,
    trials_of_group,
    verdict_of,
)


def winner_confusion(context: ReportContext) -> np.ndarray:
    outputs = context.checkpoint_outputs(context.winners.overall)
    return confusion_matrix(context.confirmation.test.labels, outputs.argmax(axis=1), len(context.class_names))


@section("confusion_matrix", needs="checkpoint")
def confusion_matrix_section(context: ReportContext) -> list[Block]:
    names = context.class_names
    cm = winner_confusion(context)
    normalised = row_normalised(cm)
    counts = pd.DataFrame(cm, columns=[f"Pred {n}" for n in names]).astype(int)
    counts.insert(0, "", [f"True {n}" for n in names])
    rows = pd.DataFrame([[f"{100 * v:.1f}%" for v in row] for row in normalised], columns=[f"Pred {n}" for n in names])
    rows.insert(0, "", [f"True {n}" for n in names])
    path = figures.confusion_matrices(cm, names, context.figures_dir / "confusion_matrix.png",
                                      f"Winner {context.winners.overall}, sweep checkpoint, test split")
    return [Heading("Confusion matrix"),
            Paragraph("The winner's best sweep checkpoint on the test split."),
            Table(counts, caption="Counts", source=context.cite("confusion_matrix")),
            Table(rows, caption="Row-normalised (share of each true class)", source=context.cite("confusion_matrix")),
            Figure(path, "Confusion matrix, counts and row-normalised")]


@section("classification_report", needs="checkpoint")
def classification_report(context: ReportContext) -> list[Block]:
    names = context.class_names
    winner = context.winners.overall
    cm = winner_confusion(context)
    point = lambda metric: estimate_mean(context.estimate(winner, metric, CHECKPOINT))  # noqa: E731
    support = cm.sum(axis=1)
    rows = [[n, point(f"precision_{n}"), point(f"recall_{n}"), point(f"f1_{n}"), f"{int(s):,}"]
            for n, s in zip(names, support)]
    total = f"{int(cm.sum()):,}"
    rows.append(["Accuracy", "—", "—", point("accuracy"), total])
    rows.append(["Macro avg", point("macro_precision"), point("macro_recall"), point("macro_f1"), total])
    rows.append(["Weighted avg", point("weighted_precision"), point("weighted_recall"), point("weighted_f1"), total])
    frame = pd.DataFrame(rows, columns=["Class", "Precision", "Recall", "F1-score", "Support"])
    seeds = pd.DataFrame([[n, estimate_text(context.estimate(winner, f"precision_{n}", RETRAINED)),
                           estimate_text(context.estimate(winner, f"recall_{n}", RETRAINED)),
                           estimate_text(context.estimate(winner, f"f1_{n}", RETRAINED))] for n in names],
                         columns=["Class", "Precision", "Recall", "F1-score"])
    return [Heading("Classification report"),
            Table(frame, caption="Winner's sweep checkpoint, test split", source=context.cite("classification_report")),
            *([Table(seeds, caption=f"The winner's config {context.seeds_label()}")]
              if context.retrained(winner) else [])]


@section("roc_auc", needs="checkpoint")
def roc_auc(context: ReportContext) -> list[Block]:
    names = context.class_names
    winner = context.winners.overall
    rows = [[f"AUC {n}", estimate_mean(context.estimate(winner, f"auc_{n}", CHECKPOINT)),
             estimate_text(context.estimate(winner, f"auc_{n}", RETRAINED))] for n in names]
    rows.append(["Macro-average AUC", estimate_mean(context.estimate(winner, "macro_auc", CHECKPOINT)),
                 estimate_text(context.estimate(winner, "macro_auc", RETRAINED))])
    frame = pd.DataFrame(rows, columns=["", "Sweep checkpoint", context.seeds_label()])
    if not context.retrained(winner):
        frame = frame.drop(columns=[context.seeds_label()])
    aucs = {f"auc_{n}": e.mean for n in names if isinstance(e := context.estimate(winner, f"auc_{n}", CHECKPOINT),
                                                             Estimate)}
    path = figures.roc_curves(context.confirmation.test.labels, context.checkpoint_outputs(winner), names, aucs,
                              context.figures_dir / "roc_curves.png", f"One-vs-rest ROC, winner {winner}")
    return [Heading("ROC-AUC"), Table(frame, caption="One-vs-rest ROC-AUC, test split", source=context.cite("roc_auc")),
            Figure(path, "ROC curves of the winner's sweep checkpoint on the test split")]


@section("error_analysis", needs="checkpoint")
def error_analysis(context: ReportContext) -> list[Block]:
    names = context.class_names
    cm = winner_confusion(context)
    mistakes = sorted(((cm[i, j], i, j) for i in range(len(names)) for j in range(len(names)) if i != j and cm[i, j]),
                      reverse=True)
    items = [f"True {names[i]} predicted as {names[j]}: {n} of {cm[i].sum()} ({n / cm[i].sum():.1%})"
             for n, i, j in mistakes[:5]] or ["No misclassification on the test split."]
    return [Heading("Error analysis"), Bullets(tuple(items))]


@section("sample_predictions", needs="checkpoint")
def sample_predictions(context: ReportContext) -> list[Block]:
    test = context.confirmation.test
    outputs = context.checkpoint_outputs(context.winners.overall)
    chosen = sample_indices(test.labels, outputs.argmax(axis=1), len(context.class_names), count=12)
    path = figures.prediction_grid(test.images[chosen], test.labels[chosen], outputs[chosen], context.class_names,
                                   context.figures_dir / "sample_predictions.png")
    wrong = int((outputs[chosen].argmax(axis=1) != test.labels[chosen]).sum())
    source = context.cite("sample_predictions")
    return [Heading("Sample predictions"),
            Paragraph(f"12 test samples, as many per class as there are, up to half of them misclassified when the "
                      f"model made mistakes ({wrong} shown here): green frame correct, red frame wrong, with the "
                      f"predicted class's confidence{f' ({source})' if source else ''}."),
            Figure(path, "Test predictions of the winner's sweep checkpoint")]


def sample_indices(labels: np.ndarray, predictions: np.ndarray, num_classes: int, *, count: int,
                   seed: int = 0) -> np.ndarray:
    """``count`` test samples spread over the classes, each class's share up to half wrong."""
    rng = np.random.default_rng(seed)
    per_class = max(1, count // num_classes)
    chosen: list[int] = []
    for c in range(num_classes):
        wrong = rng.permutation(np.flatnonzero((labels == c) & (predictions != c)))
        right = rng.permutation(np.flatnonzero((labels == c) & (predictions == c)))
        take_wrong = wrong[: per_class // 2]
        chosen += list(take_wrong) + list(right[: per_class - len(take_wrong)])
    taken = set(chosen)
    rest = [i for i in rng.permutation(len(labels)) if i not in taken]
    return np.array((chosen + rest)[:count], dtype=np.int64)


@section("ablation", needs="confirmation")
def ablation(context: ReportContext) -> list[Block]:
    experiment, winners = context.experiment, context.winners
    group_by = winners.group_by
    keys = [tuple(k) for k, _ in context.spec.group_labels] or sorted(winners.per_group, key=str)
    class_names = context.class_names
    rows, estimates = [], []
    for key in keys:
        label = context.group_name(key)
        trial_id = winners.per_group.get(key)
        base = {"Experiment": label, **{axis: value for axis, value in zip(group_by, key)}}
        if trial_id is None:
            reasons = trials_of_group(context, key)["stop_reason"].value_counts().to_dict()
            rows.append({**base, "Note": f"no eligible trial ({reasons or 'none ran'})"})
            continue
        row = context.trial(trial_id)
        macro = context.estimate(trial_id, metric_on_test(experiment.metric))
        if macro is None:
            rows.append({**base, "Note": f"best trial {trial_id} has no test result (see 'Not confirmed')"})
            continue
        rows.append({**base,
                     "Val Acc (%)": percent(row.get("best_val_accuracy", math.nan)),
                     "Test Acc (%)": estimate_text(context.estimate(trial_id, "accuracy"), scale=100, digits=1),
                     **{f"{n} F1": estimate_mean(context.estimate(trial_id, f"f1_{n}")) for n in class_names},
                     "Epochs": int(row["epochs"]),
                     f"Test {metric_on_test(experiment.metric)} [CI]": estimate_text(macro),
                     "Trial": f"{trial_id} ({other_axes(context, trial_id)})",
                     "vs winner": verdict_of(context, trial_id)})
        if isinstance(macro, Estimate):
            estimates.append({"label": label, "mean": macro.mean, "low": macro.low, "high": macro.high})
    frame = pd.DataFrame(rows)
    blocks: list[Block] = [
        Heading("Ablation"),
        Paragraph(f"Each row is the best trial of its arm by validation {winners.decided_by}; test columns are the "
                  f"mean over its {context.settings.seeds} retrained seed(s) (the sweep checkpoint where none "
                  f"retrained), intervals are {context.settings.confidence:.0%} bootstrap intervals over test images. "
                  f"Overall winner: {winners.overall}."),
        Table(frame, caption="Imbalance arms", source=context.cite("ablation") if "Note" not in frame else ""),
    ]
    if estimates:
        path = figures.estimates_by_label(pd.DataFrame(estimates), f"test {metric_on_test(experiment.metric)}",
                                          context.figures_dir / "ablation.png")
        blocks.append(Figure(path, f"Test {metric_on_test(experiment.metric)} per arm with its confidence interval"))
    blocks += arm_budget_blocks(context, keys)
    findings = factorial_findings(context, keys)
    if findings is not None:
        blocks += [Heading("Ablation findings", 3),
                   Table(findings, caption=f"Changes in test {metric_on_test(experiment.metric)} between arms (read "
                                           f"against the intervals above: overlapping arms are not distinguishable)",
                         source=context.cite("factorial"))]
    return blocks


def first_rung(context: ReportContext) -> int:
    """The epoch of ASHA's first rung, where it first stops the trials doing worse."""
    return min(context.experiment.resolved.asha.grace_period, context.experiment.resolved.max_epochs)


def rungs(context: ReportContext) -> list[int]:
    """The epochs at which ASHA compares trials: the first rung times each power of the
    reduction factor, below the sweep's last epoch."""
    resolved, epoch, found = context.experiment.resolved, first_rung(context), []
    while epoch < resolved.max_epochs:
        found.append(epoch)
        epoch *= resolved.asha.reduction_factor
    return found or [resolved.max_epochs]


def pruned_at_first_rung(trials: pd.DataFrame, rung: int) -> bool:
    """Whether ASHA stopped every one of ``trials`` (an arm's) at or before its first rung."""
    return bool(len(trials)) and bool(((trials["stop_reason"] == STOPPED_BY_ASHA) & (trials["epochs"] <= rung)).all())


def arm_budget_blocks(context: ReportContext, keys: list[tuple]) -> list[Block]:
    """How much training the sweep gave each arm, what the test-split confirmation gave its best
    config, and a warning for every arm ASHA pruned at its first rung: ASHA's budgets differ
    between arms, so validation values compare arms trained for different lengths."""
    resolved, rung = context.experiment.resolved, first_rung(context)
    rows, pruned = [], []
    for key in keys:
        trials, label = trials_of_group(context, key), context.group_name(key)
        trial_id = context.winners.per_group.get(key)
        rows.append({"Experiment": label, "Trials": len(trials), "Sweep trial-epochs": int(trials["epochs"].sum()),
                     "Stopped by ASHA": int((trials["stop_reason"] == STOPPED_BY_ASHA).sum()),
                     "Most epochs of a trial": int(trials["epochs"].max()) if len(trials) else 0,
                     **({"Retrained epochs per seed": ", ".join(epochs_with_reason(m.training)
                                                               for m in context.retrained(trial_id)) or "—"}
                        if context.retraining else {})})
        if pruned_at_first_rung(trials, rung):
            pruned.append(label)
    confirmation = (f"The test columns do not share that handicap: the confirmation retrained each arm's best config "
                    f"from scratch with {context.settings.seeds} seed(s) for up to {resolved.max_epochs} epochs, "
                    f"without ASHA (the trainable's own early stopping still applies; epochs per seed below)."
                    if context.retraining else
                    "No config was retrained (0 seeds), so the test columns are sweep checkpoints at the budgets ASHA "
                    "gave them.")
    blocks: list[Block] = [
        Paragraph(f"ASHA gave the arms unequal budgets: at each rung (epoch {', '.join(map(str, rungs(context)))}) "
                  f"it stops a trial that other trials of the sweep beat there, so an arm's validation values also "
                  f"reflect how long its trials were allowed to train. {confirmation}"),
        Table(pd.DataFrame(rows), caption="Training each arm received"),
    ]
    blocks += [Paragraph(f"ASHA stopped every trial of {label} at its first rung (epoch {rung}): the sweep never "
                         f"trained this arm further, so its validation values are those of epoch {rung} — pruning, "
                         f"not a verdict on {label}." + (" Its retrained test values above are the comparison to read."
                                                        if context.retraining else ""))
               for label in pruned]
    return blocks


def factorial_findings(context: ReportContext, keys: list[tuple]) -> pd.DataFrame | None:
    """For two on/off axes: the effect of each alone, together, and their interaction."""
    if len(context.winners.group_by) != 2 or set(keys) != {(False, False), (True, False), (False, True), (True, True)}:
        return None
    metric = metric_on_test(context.experiment.metric)
    values = {}
    for key in keys:
        trial_id = context.winners.per_group.get(key)
        e = context.estimate(trial_id, metric) if trial_id else None
        if not isinstance(e, Estimate):
            return None
        values[key] = e.mean
    base = values[(False, False)]
    first, second = context.winners.group_by
    change = lambda key: values[key] - base  # noqa: E731
    reading = lambda delta: "better" if (delta > 0) == (context.experiment.mode == "max") and delta else "not better"  # noqa: E731
    relative = lambda delta: f"{delta:+.3f} ({delta / base:+.1%})" if base else f"{delta:+.3f}"  # noqa: E731
    synergy = change((True, True)) - change((True, False)) - change((False, True))
    return pd.DataFrame({
        "Finding": [f"{context.group_name((False, False))} → {context.group_name((True, True))}",
                    f"{first} alone", f"{second} alone",
                    "Synergy (both − sum of each alone)"],
        f"Δ test {metric}": [relative(change((True, True))), relative(change((True, False))),
                             relative(change((False, True))), f"{synergy:+.3f}"],
        "Reading": [reading(change((True, True))), reading(change((True, False))), reading(change((False, True))),
                    "combination beats the sum" if reading(synergy) == "better" else "no synergy"],
    })


CLASSIFICATION_REPORT_COLUMNS = (("Precision", "macro_precision"), ("Recall", "macro_recall"), ("F1-Score", "macro_f1"))
SPLIT_SCORE_COLUMNS = (("Train", "train"), ("Validation", "val"))


@section("trial_tables", needs="confirmation")
def trial_tables(context: ReportContext) -> list[Block]:
    """Seed 004's classification tables: per model and data-loading option, every lr x dropout
    trial with its macro precision, recall and F1 on test, and accuracy and loss on train,
    validation and test."""
    epochs = context.experiment.epochs.set_index(["trial_id", "epoch"])

    def row(trial: pd.Series) -> dict[str, str]:
        trial_id = trial["trial_id"]
        labels = ([label for label, _ in CLASSIFICATION_REPORT_COLUMNS]
                  + [f"{split} {what}" for split, _ in SPLIT_SCORE_COLUMNS + (("Test", "test"),)
                     for what in ("accuracy (%)", "loss")])
        if (trial_id, CHECKPOINT) not in context.confirmation.predictions:
            return {label: not_evaluated(trial) for label in labels}
        cells = {label: estimate_percent(context.estimate(trial_id, metric, CHECKPOINT), 2)
                 for label, metric in CLASSIFICATION_REPORT_COLUMNS}
        best = epochs.loc[(trial_id, int(trial["best_epoch"]))]
        for split, prefix in SPLIT_SCORE_COLUMNS:
            cells[f"{split} accuracy (%)"] = percent(float(best.get(f"{prefix}_accuracy", math.nan)), 2)
            cells[f"{split} loss"] = number(float(best.get(f"{prefix}_loss", math.nan)), 4)
        cells["Test accuracy (%)"] = estimate_percent(context.estimate(trial_id, "accuracy", CHECKPOINT), 2)
        cells["Test loss"] = estimate_mean(context.estimate(trial_id, "loss", CHECKPOINT), 4)
        return cells

    return [Heading("Results per model and data-loading option"),
            Paragraph("Every trial's best sweep checkpoint (by validation macro-F1). Precision, recall and F1 are "
                      "macro averages on the test split, as in the document's classification-report columns. Train "
                      "and validation accuracy and loss are the trial's own at that epoch (training accuracy is the "
                      "running share right while training, on augmented, balanced batches, as Keras reports it); "
                      "test accuracy and loss are the checkpoint's on the test split of its own loading option. "
                      "Losses are cross-entropy (the document prints them × 100). Trials with no checkpoint say why."),
            *per_group_trial_tables(context, caption="classification report and scores per split", row=row)]


@section("model_comparison", needs="confirmation", trainable="classification")
def model_comparison(context: ReportContext) -> list[Block]:
    """The documents' model comparison: each group's winner with its size and measured speed
    beside its test scores."""
    from trainables.classification import checkpoint_profile

    binary = len(context.class_names) == 2
    metrics = (("Accuracy (%)", "accuracy"), ("Sensitivity (%)", "sensitivity"), ("Specificity (%)", "specificity"),
               ("Precision (%)", "precision"), ("F1 (%)", "f1"), ("AUC", "auc")) if binary else (
               ("Accuracy (%)", "accuracy"), ("Macro F1 (%)", "macro_f1"), ("Weighted F1 (%)", "weighted_f1"),
               ("Macro AUC", "macro_auc"))
    rows, device = [], "cpu"
    for key, trial_id in context.winners.per_group.items():
        checkpoint = context.trial(trial_id)["best_checkpoint"]
        if (trial_id, CHECKPOINT) not in context.confirmation.predictions:
            continue
        profile = checkpoint_profile(Path(checkpoint), context.confirmation.test_of(trial_id))
        device = profile["device"]
        row = {"Model": context.group_name(key), "Trial": trial_id,
               "Parameters": f"{profile['parameters']:,.0f}", "Trainable": f"{profile['trainable_parameters']:,.0f}",
               "Latency (ms/image)": f"{profile['latency_ms']:.1f}"}
        for label, metric in metrics:
            e = context.estimate(trial_id, metric)
            row[label] = estimate_text(e, scale=1 if "AUC" in label else 100, digits=3 if "AUC" in label else 1)
        rows.append(row)
    if not rows:
        return []
    return [Heading("Model comparison"),
            Paragraph(f"Each model's best trial: parameters (all / trainable), the median time to classify one "
                      f"image (batch of one, {device}, this machine, after a warm-up) and its test scores "
                      f"({context.seeds_label() if context.retraining else 'sweep checkpoint'}). Latency depends on "
                      f"the machine and the input size of this run's profile; compare models with each other, not "
                      f"with the document's milliseconds."),
            Table(pd.DataFrame(rows), caption="Model comparison on the test split",
                  source=context.cite("model_comparison"))]
