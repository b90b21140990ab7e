"""Sections about the sweep itself: its hyperparameters against the metric, the epochs each
trial ran under ASHA and the compute that saved, parameter importance and parallel coordinates
of its finished trials (``sweep``), and the table of every trial (``trials``)."""

from __future__ import annotations

import math

import pandas as pd

from analysis import figures
from analysis.document import Block, Figure, Heading, Paragraph, Table
from analysis.importance import Importance, param_value, parameter_importance, trial_values
from sweeps.summary import STOPPED_BY_ASHA

from .base import ReportContext, duration, number, section


@section("sweep")
def sweep_section(context: ReportContext) -> list[Block]:
    experiment = context.experiment
    trials = experiment.trials
    max_epochs = experiment.resolved.max_epochs
    ran = int(trials["epochs"].sum())
    full = len(trials) * max_epochs
    epoch_seconds = (experiment.epochs["time_this_iter_s"].mean() if "time_this_iter_s" in experiment.epochs
                     else math.nan)
    spent = float(trials["wall_seconds"].sum())
    compute = pd.DataFrame({
        "": ["Trial-epochs", "Trial wall time (sum over trials)"],
        "Spent (with ASHA and early stopping)": [f"{ran:,}", duration(spent)],
        "Full grid without early stopping": [f"{full:,}", duration(full * epoch_seconds)],
        "Saved": [f"{1 - ran / full:.0%}" if full else "n/a",
                  f"{1 - spent / (full * epoch_seconds):.0%}" if full and epoch_seconds > 0 else "n/a"],
    })
    blocks: list[Block] = [
        Heading("The sweep"),
        Paragraph(f"{len(trials)} trials over {', '.join(experiment.axes) or 'no axes'}; ASHA on epochs with grace "
                  f"period {experiment.resolved.asha.grace_period} and reduction factor "
                  f"{experiment.resolved.asha.reduction_factor}, max {max_epochs} epochs. The full-grid wall time "
                  f"assumes every trial runs {max_epochs} epochs at the measured mean of "
                  f"{number(epoch_seconds, 1)} s per epoch."),
        Table(compute, caption="Compute spent against the full grid"),
    ]
    if not trials.empty:
        blocks.append(Figure(figures.hyperparameters_against_metric(trials, experiment.axes, experiment.metric,
                                                                     context.figures_dir / "hyperparameters.png"),
                             f"Best {experiment.metric} of every trial against each hyperparameter"))
        blocks.append(Figure(figures.epochs_per_trial(trials, max_epochs, context.figures_dir / "epochs_per_trial.png"),
                             "Epochs each trial ran under ASHA and early stopping"))
        blocks += importance_blocks(context)
    return blocks


EPOCHS_RUN = "epochs run"


def importance_blocks(context: ReportContext) -> list[Block]:
    """Parameter importance and parallel coordinates of the finished trials on the sweep's
    metric, with what they can and cannot show; a sentence instead when there is too little."""
    experiment = context.experiment
    found = parameter_importance(experiment)
    blocks: list[Block] = [Heading("Parameter importance and parallel coordinates", 3)]
    if not found.drawable:
        return blocks + [Paragraph(f"Not drawn: {found.skipped}.")]
    blocks.append(Paragraph(importance_text(context, found)))
    if found.importances:
        path = figures.param_importance(found.importances, experiment.metric,
                                        context.figures_dir / "param_importance.png", trials=len(found.trials))
        blocks.append(Figure(path, f"Share of the variance of best {experiment.metric} each varying axis explains "
                                   f"(fANOVA over {len(found.trials)} finished trials)"))
    table, categories = parallel_table(context, found)
    path = figures.parallel_coordinates(
        table, found.trials["stop_reason"].reset_index(drop=True), context.figures_dir / "parallel_coordinates.png",
        categories=categories, log_axes=tuple(axis.name for axis in found.varying if axis.log),
        value_ticks=(*(axis.name for axis in found.varying), EPOCHS_RUN),
        title=f"Finished trials: varying axes, epochs run and best {experiment.metric}")
    blocks.append(Figure(path, f"Each finished trial through its value on every varying axis, the epochs it ran and "
                               f"its best {experiment.metric}; colour and line style by stop reason (dashed: stopped "
                               f"by ASHA, shown at the budget it got)"))
    return blocks


def importance_text(context: ReportContext, found: Importance) -> str:
    """What the two figures show and what they do not, for this sweep."""
    experiment, trials = context.experiment, found.trials
    better = "higher" if experiment.mode == "max" else "lower"
    sentences = [f"Both figures use the {len(trials)} finished trial(s) (completed, early-stopped or stopped by ASHA) "
                 f"and each one's best {experiment.metric} ({better} is better) over the epochs it ran"
                 f"{left_out_text(context, found)}."]
    asha = int((trials["stop_reason"] == STOPPED_BY_ASHA).sum())
    if asha:
        sentences.append(f"ASHA stopped {asha} of them; each enters with its best value at the budget it got, so "
                         f"an axis whose values learn fast early can look more important than it would at the full "
                         f"budget.")
    if found.importances:
        ranked = ", ".join(f"{name} {share:.2f}" for name, share in found.importances.items())
        sentences.append(f"Importance is fANOVA (Optuna's FanovaImportanceEvaluator): a random forest fitted to the "
                         f"trials, its variance split among the varying axes, shares summing to 1 ({ranked}). It "
                         f"describes this sweep only: over {search_extent(context)} it is coarse, interactions are "
                         f"shared out among the axes, it says nothing about direction (the parallel coordinates do), "
                         f"and it is no evidence that an axis matters outside the range searched.")
    else:
        sentences.append(f"No importance is given: {found.skipped}.")
    if len(found.varying) == 1:
        sentences.append(f"Only {found.varying[0].name} varied among the finished trials, so it carries all the "
                         f"importance by construction.")
    categorical = [axis.name for axis in found.varying if axis.categorical]
    if categorical:
        sentences.append(f"Boolean and text axes ({', '.join(categorical)}) are categories without an order.")
    logs = [axis.name for axis in found.varying if axis.log]
    if logs:
        sentences.append(f"{', '.join(logs)} {'is' if len(logs) == 1 else 'are'} drawn on a log scale.")
    if found.constant:
        sentences.append(f"A constant axis has no importance and is not drawn: {', '.join(found.constant)} took one "
                         f"value in every finished trial.")
    return " ".join(sentences)


def left_out_text(context: ReportContext, found: Importance) -> str:
    """'; 2 other(s) … are left out (1 diverged, 1 errored)', or nothing when every trial finished."""
    trials = context.experiment.trials
    reasons = trials.loc[~trials["trial_id"].isin(found.trials["trial_id"]), "stop_reason"]
    if reasons.empty:
        return ""
    counts = ", ".join(f"{n} {reason}" for reason, n in reasons.value_counts().items())
    return f"; {len(reasons)} other(s) have no comparable value and are left out ({counts})"


def search_extent(context: ReportContext) -> str:
    """'a 12-point grid with 2 to 3 values per axis': how finely the sweep searched."""
    resolved = context.experiment.resolved
    sizes = [len(values) for values in resolved.grid.values()] or [1]
    spread = f"{min(sizes)}" if min(sizes) == max(sizes) else f"{min(sizes)} to {max(sizes)}"
    return f"a {resolved.grid_size}-point grid with {spread} values per axis"


def parallel_table(context: ReportContext, found: Importance) -> tuple[pd.DataFrame, dict[str, list]]:
    """The parallel-coordinates columns (each varying axis, epochs run, best metric), one row per
    finished trial, and the value order of the categorical ones."""
    experiment = context.experiment
    table = pd.DataFrame({axis.name: [param_value(axis, v) for v in
                                      trial_values(experiment, found.trials, axis.name)]
                          for axis in found.varying})
    table[EPOCHS_RUN] = found.trials["epochs"].to_numpy(dtype=int)
    table[f"best {experiment.metric}"] = pd.to_numeric(found.trials[f"best_{experiment.metric}"]).to_numpy()
    return table, {axis.name: axis.choices for axis in found.varying if axis.categorical}


@section("trials")
def trials_section(context: ReportContext) -> list[Block]:
    experiment = context.experiment
    column = f"best_{experiment.metric}"
    shown = pd.DataFrame({"Trial": experiment.trials["trial_id"]})
    for axis in experiment.axes:
        shown[axis] = experiment.trials.get(f"config/{axis}")
    shown["Stop reason"] = experiment.trials["stop_reason"]
    shown["Epochs"] = experiment.trials["epochs"]
    shown[column] = experiment.trials[column].map(number) if column in experiment.trials else "n/a"
    shown["Time"] = experiment.trials["wall_seconds"].map(duration)
    shown["Detail"] = experiment.trials["detail"].fillna("").map(lambda text: str(text)[:90] or "—")
    return [Heading("All trials"), Table(shown, caption="Every trial, also in results.csv")]
