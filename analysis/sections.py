"""Report sections, registered by name; a study's registry entry lists the ones its report has.

Each section is a function of the ``ReportContext`` returning blocks. Sections that need a
winner (or test-split results) are skipped with a note when the experiment has none, so an
experiment where every trial failed still gets a report that says so.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import figures
from analysis.document import Block, Bullets, Figure, Heading, Paragraph, Table
from analysis.rerun import CHECKPOINT, RETRAINED, Confirmation, RerunSettings, metric_on_test
from analysis.results import Experiment, direction
from sweeps.report_spec import ReportSpec
from analysis.stats import Estimate
from analysis.winners import Winners, format_group, group_key
from trainables.metrics import confusion_matrix, row_normalised


@dataclass(frozen=True)
class ReportContext:
    experiment: Experiment
    winners: Winners
    confirmation: Confirmation | None
    spec: ReportSpec
    figures_dir: Path
    settings: RerunSettings

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.confirmation.class_names if self.confirmation else tuple(self.experiment.audit.get("class_names", ()))

    def cite(self, topic: str) -> str:
        """Where in the study's document a table comes from ("" for medsweep's own tables)."""
        where = self.spec.citation(topic)
        return f"{self.spec.document} {where}" if where else ""

    @cached_property
    def _trials_by_id(self) -> pd.DataFrame:
        return self.experiment.trials.set_index("trial_id")

    def trial(self, trial_id: str) -> pd.Series:
        return self._trials_by_id.loc[trial_id]

    def group_name(self, key: tuple) -> str:
        return self.spec.label(key) or format_group(self.winners.group_by, key) or "all trials"

    def checkpoint_outputs(self, trial_id: str) -> np.ndarray | None:
        models = self.confirmation.predictions.get((trial_id, CHECKPOINT)) if self.confirmation else None
        return models[0].outputs if models else None

    def retrained(self, trial_id: str) -> list:
        return self.confirmation.predictions.get((trial_id, RETRAINED), []) if self.confirmation else []

    def estimate(self, trial_id: str, metric: str, kind: str | None = None) -> Estimate | None:
        return self.confirmation.estimate(trial_id, metric, kind) if self.confirmation else None

    def seeds_label(self) -> str:
        return f"retrained × {self.settings.seeds} seeds: mean ± std [{self.settings.confidence:.0%} CI]"

    @property
    def retraining(self) -> bool:
        return self.settings.seeds > 0


NEEDS = ("", "winner", "confirmation", "checkpoint")


@dataclass(frozen=True)
class SectionEntry:
    """A section and what it needs to run: nothing, a winner, test-split results of the
    candidates (``confirmation``), or the winner's own sweep checkpoint on the test split."""

    function: Callable[[ReportContext], list[Block]]
    needs: str


SECTIONS: dict[str, SectionEntry] = {}


def section(name: str, *, needs: str = ""):
    if needs not in NEEDS:
        raise ValueError(f"section {name!r}: needs={needs!r} is unknown; valid: {NEEDS}")

    def register(function: Callable[[ReportContext], list[Block]]):
        SECTIONS[name] = SectionEntry(function, needs)
        return function
    return register


def get_section(name: str) -> SectionEntry:
    try:
        return SECTIONS[name]
    except KeyError:
        raise KeyError(f"unknown report section {name!r}; valid sections: {', '.join(sorted(SECTIONS))}") from None


def render_sections(context: ReportContext) -> list[Block]:
    blocks: list[Block] = []
    for name in context.spec.sections:
        if can_run(get_section(name).needs, context):
            blocks.extend(get_section(name).function(context))
    return blocks


def can_run(needs: str, context: ReportContext) -> bool:
    if needs and context.winners.overall is None:
        return False
    if needs in ("confirmation", "checkpoint") and context.confirmation is None:
        return False
    return needs != "checkpoint" or context.checkpoint_outputs(context.winners.overall) is not None


# ---- formatting ---------------------------------------------------------------------------

def number(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def percent(value, digits: int = 1) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.{digits}f}"


def duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "n/a"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else (f"{minutes} min {secs:02d} s" if minutes else f"{secs} s")


def estimate_mean(e: Estimate | None, digits: int = 3) -> str:
    return "n/a" if e is None else number(e.mean, digits)


def estimate_text(e: Estimate | None, *, scale: float = 1.0, digits: int = 3) -> str:
    if e is None:
        return "n/a"
    scaled = Estimate(mean=e.mean * scale, std=e.std * scale, low=e.low * scale, high=e.high * scale, seeds=e.seeds)
    return scaled.format(digits)


def axis_values(context: ReportContext, trial_id: str) -> str:
    config = context.experiment.config(trial_id)
    return ", ".join(f"{axis}={config.get(axis)}" for axis in context.experiment.axes)


# ---- sections ------------------------------------------------------------------------------

@section("summary")
def summary(context: ReportContext) -> list[Block]:
    experiment, winners = context.experiment, context.winners
    counts = experiment.trials["stop_reason"].value_counts()
    resolved = experiment.resolved
    blocks: list[Block] = [
        Heading("Summary"),
        Paragraph(f"Sweep {experiment.spec.name} — {experiment.spec.study}. Profile {resolved.profile}"
                  f"{' (smoke)' if resolved.smoke else ''}; {len(experiment.trials)} trial(s): "
                  + ", ".join(f"{n} {reason}" for reason, n in counts.items())
                  + f". Trials are selected on {experiment.metric} ({experiment.mode}) of the validation split; "
                    "the test split is used only below, to confirm the candidates."),
    ]
    leakage = experiment.audit.get("leakage") or {}
    if leakage.get("exact_groups") or leakage.get("near_pairs"):
        blocks.append(Paragraph(
            f"Data audit: {leakage['exact_groups']} exact duplicate group(s) and {leakage['near_pairs']} "
            f"near-duplicate pair(s) of images span different splits (listed in data_audit.txt), e.g. "
            + "; ".join([" = ".join(g) for g in leakage["exact"][:2]] + [f"{p['a']} ~ {p['b']}" for p in leakage["near"][:2]])
            + ". Test results of models that saw such a twin in training may be optimistic."))
    if winners.overall is None:
        blocks.append(Paragraph(f"No trial finished with a finite {experiment.metric}: every trial diverged, "
                                "errored or never ran, so there is no winner to confirm. The trial table below "
                                "says why each one ended."))
        return blocks
    row = context.trial(winners.overall)
    items = [f"Winner: trial {winners.overall} ({axis_values(context, winners.overall)}), best "
             f"{experiment.metric} {number(row[f'best_{experiment.metric}'])} at epoch {int(row['best_epoch'])}."]
    metric = metric_on_test(experiment.metric)
    if context.confirmation is not None:
        retrained = (f"; {context.seeds_label()} "
                     f"{estimate_text(context.estimate(winners.overall, metric, RETRAINED))}" if context.retraining else "")
        items.append(f"Test {metric} of the winner: sweep checkpoint "
                     f"{estimate_text(context.estimate(winners.overall, metric, CHECKPOINT))}{retrained}.")
        items.append(tie_sentence(context))
        items += [f"Not confirmed: {failure}" for failure in context.confirmation.failures]
    blocks.append(Bullets(tuple(items)))
    return blocks


def tie_sentence(context: ReportContext) -> str:
    comparisons = context.confirmation.comparisons
    metric = metric_on_test(context.experiment.metric)
    if comparisons.empty:
        return f"No other candidate to compare with the winner on test {metric}."
    tied = list(comparisons.loc[comparisons["verdict"] == "tied", "trial_id"])
    better = list(comparisons.loc[comparisons["verdict"] == "better", "trial_id"])
    text = (f"Statistically tied with the winner on test {metric} (paired bootstrap over test images, "
            f"{context.settings.confidence:.0%}): " + (", ".join(tied) if tied else "none") + ".")
    if better:
        text += " Significantly better on test than the validation winner: " + ", ".join(better) + "."
    return text


@section("model_performance", needs="checkpoint")
def model_performance(context: ReportContext) -> list[Block]:
    winner = context.winners.overall
    row = context.trial(winner)
    retrained = context.retrained(winner)
    columns = {
        "Measure": ["Test loss", "Test accuracy (%)", "Best validation accuracy (%)", "Training stopped at epoch",
                    "Total training time"],
        "Winner's sweep checkpoint": [
            number(context.estimate(winner, "loss", CHECKPOINT).mean, 4),
            percent(context.estimate(winner, "accuracy", CHECKPOINT).mean, 2),
            percent(row.get("best_val_accuracy", math.nan), 2),
            str(int(row["epochs"])), duration(float(row["wall_seconds"]))],
        context.seeds_label(): [
            estimate_text(context.estimate(winner, "loss", RETRAINED), digits=4),
            estimate_text(context.estimate(winner, "accuracy", RETRAINED), scale=100, digits=2),
            mean_text([m.training.get("best_val_accuracy") for m in retrained], scale=100),
            ", ".join(epochs_with_reason(m.training) for m in retrained) or "n/a",
            duration(float(np.mean([m.training["wall_seconds"] for m in retrained]))) if retrained else "n/a"],
    }
    frame = pd.DataFrame(columns if retrained else {k: v for k, v in columns.items() if k != context.seeds_label()})
    return [Heading("Model performance on the test split"),
            Paragraph("Test loss is the unweighted cross-entropy, comparable across arms. Training time is the "
                      "trial's own time (data in memory), without Ray start-up. In the retrained column, ± is the "
                      "spread over seeds and the interval resamples test images for the seed-averaged value, so "
                      "it shows test-set sampling error, not seed-to-seed variation."),
            Table(frame, caption=f"Winner {winner}", source=context.cite("model_performance"))]


def epochs_with_reason(training: dict) -> str:
    """'14', or '9 (diverged)' when a model did not run to its planned end."""
    reason = training.get("stop_reason", "completed")
    return str(training["epochs"]) + ("" if reason == "completed" else f" ({reason})")


def mean_text(values: list, *, scale: float = 1.0, digits: int = 2) -> str:
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not finite:
        return "n/a"
    spread = f" ± {np.std(finite, ddof=1) * scale:.{digits}f}" if len(finite) > 1 else ""
    return f"{np.mean(finite) * scale:.{digits}f}{spread}"


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
    point = lambda metric: context.estimate(winner, metric, CHECKPOINT).mean  # noqa: E731
    support = cm.sum(axis=1)
    rows = [[n, number(point(f"precision_{n}")), number(point(f"recall_{n}")), number(point(f"f1_{n}")),
             f"{int(s):,}"] for n, s in zip(names, support)]
    total = f"{int(cm.sum()):,}"
    rows.append(["Accuracy", "—", "—", number(point("accuracy")), total])
    rows.append(["Macro avg", number(point("macro_precision")), number(point("macro_recall")),
                 number(point("macro_f1")), total])
    rows.append(["Weighted avg", number(point("weighted_precision")), number(point("weighted_recall")),
                 number(point("weighted_f1")), total])
    frame = pd.DataFrame(rows, columns=["Class", "Precision", "Recall", "F1-score", "Support"])
    seeds = pd.DataFrame([[n, estimate_text(context.estimate(winner, f"precision_{n}", RETRAINED)),
                           estimate_text(context.estimate(winner, f"recall_{n}", RETRAINED)),
                           estimate_text(context.estimate(winner, f"f1_{n}", RETRAINED))] for n in names],
                         columns=["Class", "Precision", "Recall", "F1-score"])
    return [Heading("Classification report"),
            Table(frame, caption="Winner's sweep checkpoint, test split", source=context.cite("classification_report")),
            *([Table(seeds, caption=f"The winner's config {context.seeds_label()}")] if context.retrained(winner) else [])]


@section("roc_auc", needs="checkpoint")
def roc_auc(context: ReportContext) -> list[Block]:
    names = context.class_names
    winner = context.winners.overall
    rows = [[f"AUC {n}", number(context.estimate(winner, f"auc_{n}", CHECKPOINT).mean),
             estimate_text(context.estimate(winner, f"auc_{n}", RETRAINED))] for n in names]
    rows.append(["Macro-average AUC", number(context.estimate(winner, "macro_auc", CHECKPOINT).mean),
                 estimate_text(context.estimate(winner, "macro_auc", RETRAINED))])
    frame = pd.DataFrame(rows, columns=["", "Sweep checkpoint", context.seeds_label()])
    if not context.retrained(winner):
        frame = frame.drop(columns=[context.seeds_label()])
    aucs = {f"auc_{n}": context.estimate(winner, f"auc_{n}", CHECKPOINT).mean for n in names}
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
        estimates.append({"label": label, "mean": macro.mean, "low": macro.low, "high": macro.high})
    frame = pd.DataFrame(rows)
    blocks: list[Block] = [
        Heading("Ablation"),
        Paragraph(f"Each row is the best trial of its arm by validation {experiment.metric}; test columns are the "
                  f"mean over its {context.settings.seeds} retrained seed(s) (the sweep checkpoint where none "
                  f"retrained), intervals are {context.settings.confidence:.0%} bootstrap intervals over test images. "
                  f"Overall winner: {winners.overall}."),
        Table(frame, caption="Imbalance arms", source=context.cite("ablation") if "Note" not in frame else ""),
    ]
    if estimates:
        path = figures.estimates_by_label(pd.DataFrame(estimates), f"test {metric_on_test(experiment.metric)}",
                                          context.figures_dir / "ablation.png")
        blocks.append(Figure(path, f"Test {metric_on_test(experiment.metric)} per arm with its confidence interval"))
    findings = factorial_findings(context, keys)
    if findings is not None:
        blocks += [Heading("Ablation findings", 3),
                   Table(findings, caption=f"Changes in test {metric_on_test(experiment.metric)} between arms (read "
                                           f"against the intervals above: overlapping arms are not distinguishable)",
                         source=context.cite("factorial"))]
    return blocks


def trials_of_group(context: ReportContext, key: tuple) -> pd.DataFrame:
    trials = context.experiment.trials
    mask = [group_key(row, context.winners.group_by) == tuple(key) for _, row in trials.iterrows()]
    return trials[mask]


def other_axes(context: ReportContext, trial_id: str) -> str:
    config = context.experiment.config(trial_id)
    others = [a for a in context.experiment.axes if a not in context.winners.group_by]
    return ", ".join(f"{a}={config.get(a)}" for a in others) or "—"


def verdict_of(context: ReportContext, trial_id: str) -> str:
    if trial_id == context.winners.overall:
        return "winner"
    found = context.confirmation.comparisons
    found = found[found["trial_id"] == trial_id]
    if not found.empty:
        return str(found["verdict"].iloc[0])
    other_split = context.confirmation.test_of(trial_id) is not context.confirmation.test
    return "not compared: another test split" if other_split else "n/a"


def factorial_findings(context: ReportContext, keys: list[tuple]) -> pd.DataFrame | None:
    """For two on/off axes: the effect of each alone, together, and their interaction."""
    if len(context.winners.group_by) != 2 or set(keys) != {(False, False), (True, False), (False, True), (True, True)}:
        return None
    metric = metric_on_test(context.experiment.metric)
    values = {}
    for key in keys:
        trial_id = context.winners.per_group.get(key)
        e = context.estimate(trial_id, metric) if trial_id else None
        if e is None:
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


@section("confirmation", needs="confirmation")
def confirmation_section(context: ReportContext) -> list[Block]:
    experiment, winners = context.experiment, context.winners
    metric = metric_on_test(experiment.metric)
    rows = []
    for candidate in winners.candidates:
        row = context.trial(candidate.trial_id)
        found = context.confirmation.comparisons
        found = found[found["trial_id"] == candidate.trial_id]
        rows.append({"Trial": candidate.trial_id, "Roles": "; ".join(candidate.roles),
                     "Config": axis_values(context, candidate.trial_id),
                     f"Val {metric}": number(row[f"best_{experiment.metric}"]),
                     f"Test {metric}, sweep checkpoint": estimate_text(context.estimate(candidate.trial_id, metric, CHECKPOINT)),
                     **({f"Test {metric}, {context.seeds_label()}":
                         estimate_text(context.estimate(candidate.trial_id, metric, RETRAINED))} if context.retraining else {}),
                     "Δ vs winner [CI]": "—" if found.empty else
                     f"{found['difference'].iloc[0]:+.3f} [{found['low'].iloc[0]:+.3f}, {found['high'].iloc[0]:+.3f}] "
                     f"({found['kind'].iloc[0]})",
                     "Verdict": verdict_of(context, candidate.trial_id)})
    blocks: list[Block] = [
        Heading("Confirmation on the test split"),
        Paragraph("Candidates: the best trials overall and the best of every group. Each is evaluated from its best "
                  "sweep checkpoint" + (f" and retrained from scratch with seeds {list(context.settings.seed_values)} "
                                        "as one Ray Tune run" if context.retraining else "")
                  + f"; intervals resample test images ({context.settings.bootstrap} resamples). {tie_sentence(context)}"),
        Table(pd.DataFrame(rows), caption="Candidates"),
    ]
    if context.confirmation.failures:
        blocks.append(Bullets(tuple(f"Not confirmed: {f}" for f in context.confirmation.failures)))
    return blocks


@section("training_curves", needs="winner")
def training_curves(context: ReportContext) -> list[Block]:
    winners, epochs = context.winners, context.experiment.epochs
    chosen = ({context.group_name(k): t for k, t in winners.per_group.items()} if winners.group_by
              else {c.trial_id: c.trial_id for c in winners.candidates})
    histories = {f"{label} ({trial_id})": epochs[epochs["trial_id"] == trial_id]
                 for label, trial_id in chosen.items()}
    histories = {k: v for k, v in histories.items() if not v.empty and context.experiment.metric in v}
    if not histories:
        return []
    metrics = list(dict.fromkeys((context.experiment.metric, *context.spec.curves)))
    path = figures.training_curves(histories, metrics, context.figures_dir / "training_curves.png")
    return [Heading("Training curves"),
            Figure(path, f"{', '.join(metrics)} and losses per epoch of the best trial of each group")]


@section("checks", needs="confirmation")
def checks(context: ReportContext) -> list[Block]:
    rows = []
    for check in context.spec.checks:
        measured, shown = measure(context, check.quantity)
        holds = "n/a" if measured is None else ("yes" if check.holds(measured) else "no")
        rows.append({"Source": check.source, "Kind": check.kind, "Statement": check.statement,
                     "Document": f"{check.op} {check.value}" + (f" (± {check.tolerance})" if check.tolerance else ""),
                     "Measured": shown, "Holds": holds})
    if not rows:
        return []
    return [Heading("The document's targets and claims"),
            Paragraph("Each target or claim of the document beside what was measured here (test values: the mean "
                      "over the retrained seeds, or the sweep checkpoint where none were retrained)."),
            Table(pd.DataFrame(rows), caption="Targets and claims", source=context.cite("checks"))]


CHECK_QUANTITIES = ("test", "count", "best_group", "config", "diverged")


def parse_axis_values(text: str) -> dict[str, str]:
    """``lr=0.001,dropout=0.0`` → {"lr": "0.001", "dropout": "0.0"} (compared as text)."""
    return dict(item.split("=", 1) for item in text.split(",") if item)


def trials_with(context: ReportContext, values: dict[str, str]) -> pd.DataFrame:
    trials = context.experiment.trials
    mask = np.ones(len(trials), dtype=bool)
    for axis, value in values.items():
        column = trials.get(f"config/{axis}")
        if column is None:
            return trials.iloc[0:0]
        mask &= column.map(lambda v: same_value(v, value)).to_numpy(dtype=bool)
    return trials[mask]


def same_value(value, text: str) -> bool:
    try:
        return float(value) == float(text)
    except (TypeError, ValueError):
        return str(value) == text


def trial_with(context: ReportContext, values: dict[str, str]) -> str | None:
    found = trials_with(context, values)
    return str(found["trial_id"].iloc[0]) if len(found) else None


def measure(context: ReportContext, quantity: str) -> tuple[float | str | None, str]:
    """The measured value of a ``Check`` quantity, and how to show it."""
    kind, _, rest = quantity.partition(":")
    if kind == "test":
        metric, _, who = rest.partition("@")
        trial_id = context.winners.overall if who == "winner" else group_trial(context, who)
        e = context.estimate(trial_id, metric) if trial_id else None
        return (None, f"no trial for {who}") if e is None else (e.mean, f"{estimate_text(e)} ({who}, {trial_id})")
    if kind == "count":
        split, _, name = rest.partition(":")
        kept = context.experiment.audit.get("kept", {})
        splits = list(kept) if split == "all" else [split]
        total = sum(int(kept.get(s, {}).get(name, 0)) for s in splits)
        return total, f"{total:,}"
    if kind == "config":
        metric, _, values = rest.partition("@")
        trial_id = trial_with(context, parse_axis_values(values))
        e = context.estimate(trial_id, metric, CHECKPOINT) if trial_id else None
        if e is None:
            return None, f"no evaluated trial with {values}"
        return e.mean, f"{number(e.mean)} [{number(e.low)}, {number(e.high)}] (sweep checkpoint {trial_id})"
    if kind == "diverged":
        chosen = trials_with(context, parse_axis_values(rest))
        diverged = int((chosen["stop_reason"] == "diverged").sum())
        verdict = "all" if diverged == len(chosen) and diverged else ("none" if not diverged else "some")
        return verdict, f"{diverged} of {len(chosen)} diverged; the others " + (
            ", ".join(f"{n} {r}" for r, n in chosen.loc[chosen["stop_reason"] != "diverged", "stop_reason"]
                      .value_counts().items()) or "—")
    if kind == "best_group":
        metric = rest
        sign = 1 if direction(metric) == "max" else -1
        scored = [(sign * context.estimate(t, metric).mean, context.group_name(k))
                  for k, t in context.winners.per_group.items() if context.estimate(t, metric)]
        best = max(scored)[1] if scored else None
        return best, best or "n/a"
    raise ValueError(f"unknown check quantity {quantity!r}; valid kinds: {', '.join(CHECK_QUANTITIES)}")


def group_trial(context: ReportContext, label: str) -> str | None:
    for key, trial_id in context.winners.per_group.items():
        if context.group_name(key) == label:
            return trial_id
    return None


@section("sweep")
def sweep_section(context: ReportContext) -> list[Block]:
    experiment = context.experiment
    trials = experiment.trials
    max_epochs = experiment.resolved.max_epochs
    ran = int(trials["epochs"].sum())
    full = len(trials) * max_epochs
    epoch_seconds = experiment.epochs["time_this_iter_s"].mean() if "time_this_iter_s" in experiment.epochs else math.nan
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
    return blocks


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
    shown["Detail"] = experiment.trials["detail"].fillna("").map(lambda text: str(text)[:90])
    return [Heading("All trials"), Table(shown, caption="Every trial, also in results.csv")]


SEGMENTATION_COLUMNS = (("Accuracy", "accuracy_pooled"), ("Loss", "loss"), ("Precision", "precision_pooled"),
                        ("Recall", "recall_pooled"), ("IoU pooled", "iou_pooled"), ("IoU per image", "iou_per_image"),
                        ("Dice pooled", "dice_pooled"), ("Dice per image", "dice_per_image"))


def per_group_trial_tables(context: ReportContext, *, caption: str,
                           row: Callable[[pd.Series], dict[str, str]]) -> list[Block]:
    """The document's layout: one table per compared group, one row per trial with its other
    grid values and then ``row(trial)``."""
    trials = context.experiment.trials
    others = [a for a in context.experiment.axes if a not in context.winners.group_by]
    keys = [tuple(k) for k, _ in context.spec.group_labels] or sorted({group_key(r, context.winners.group_by)
                                                                       for _, r in trials.iterrows()}, key=str)
    blocks: list[Block] = []
    for key in keys:
        rows = [{**{axis: trial[f"config/{axis}"] for axis in others}, **row(trial)}
                for _, trial in trials_of_group(context, key).iterrows()]
        frame = pd.DataFrame(rows).sort_values(others, ascending=False, kind="stable") if rows else pd.DataFrame()
        blocks += [Heading(context.group_name(key), 3),
                   Table(frame, caption=f"{context.group_name(key)}: {caption}", source=context.cite("trial_tables"))]
    return blocks


def not_evaluated(trial: pd.Series) -> str:
    """What a table cell says for a trial without a checkpoint to evaluate."""
    return "NaN (diverged)" if trial["stop_reason"] == "diverged" else f"— ({trial['stop_reason']})"


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
            cells[label] = number(e.mean, 4) if metric == "loss" else percent(e.mean, 2)
        inference = models[0].inference
        cells["Threshold / min size"] = f"{inference.get('threshold', 0.5)} / {inference.get('min_size', 0)} px"
        return cells

    return [Heading("Test results per model"),
            Paragraph("Every trial's best sweep checkpoint on the test split, in % like the document; the loss is the "
                      "mean per-image BCE. Pooled scores count pixels over the whole split; per-image scores average "
                      "each image's own score (an image with no cell pixels that stays empty scores 1). Masks use the "
                      "threshold and smallest component tuned on that model's validation outputs (last column)."),
            *per_group_trial_tables(context, caption="segmentation report on test (%)", row=row)]


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
        cells = {label: percent(context.estimate(trial_id, metric, CHECKPOINT).mean, 2)
                 for label, metric in CLASSIFICATION_REPORT_COLUMNS}
        best = epochs.loc[(trial_id, int(trial["best_epoch"]))]
        for split, prefix in SPLIT_SCORE_COLUMNS:
            cells[f"{split} accuracy (%)"] = percent(float(best.get(f"{prefix}_accuracy", math.nan)), 2)
            cells[f"{split} loss"] = number(float(best.get(f"{prefix}_loss", math.nan)), 4)
        cells["Test accuracy (%)"] = percent(context.estimate(trial_id, "accuracy", CHECKPOINT).mean, 2)
        cells["Test loss"] = number(context.estimate(trial_id, "loss", CHECKPOINT).mean, 4)
        return cells

    return [Heading("Results per model and data-loading option"),
            Paragraph("Every trial's best sweep checkpoint (by validation macro-F1). Precision, recall and F1 are "
                      "macro averages on the test split, as in the document's classification-report columns. Train "
                      "and validation accuracy and loss are the trial's own at that epoch (training accuracy is the "
                      "running share right while training, on augmented, balanced batches, as Keras reports it); "
                      "test accuracy and loss are the checkpoint's on the test split of its own loading option. "
                      "Losses are cross-entropy (the document prints them × 100). Trials with no checkpoint say why."),
            *per_group_trial_tables(context, caption="classification report and scores per split", row=row)]


@section("model_comparison", needs="confirmation")
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


@section("environment")
def environment(context: ReportContext) -> list[Block]:
    import os

    import torch
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30 if hasattr(os, "sysconf") else math.nan
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none visible"
    frame = pd.DataFrame({"": ["CPU", "CPU cores", "RAM", "GPU", "Python", "PyTorch"],
                          "Analysis machine": [cpu_model(), str(os.cpu_count()),
                                               f"{memory:.0f} GiB", gpu, platform.python_version(),
                                               torch.__version__]})
    return [Heading("Hardware and environment"),
            Paragraph("The machine that wrote this report and evaluated the checkpoints; trials ran on the Ray "
                      f"cluster with {experiment_resources(context)} per trial."),
            Table(frame, caption="Environment", source=context.cite("environment"))]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def experiment_resources(context: ReportContext) -> str:
    resources = context.experiment.resolved.resources
    return f"{resources.cpus:g} CPU and {resources.gpus:g} GPU"


def validate_spec(spec: ReportSpec) -> None:
    """Unknown section names or check quantities fail before any work."""
    for name in spec.sections:
        get_section(name)
    for check in spec.checks:
        if check.quantity.partition(":")[0] not in CHECK_QUANTITIES:
            raise KeyError(f"check {check.statement!r}: quantity {check.quantity!r} is unknown; valid kinds: "
                           f"{', '.join(CHECK_QUANTITIES)}")


# ---- detection (study 4) ---------------------------------------------------------------------

DETECTION_SCORES = (("Precision", "precision"), ("Recall", "recall"), ("Accuracy", "accuracy"), ("F1-Score", "f1"),
                    ("mAP@0.5", "map50"))


def group_winners_with_checkpoints(context: ReportContext) -> list[tuple[tuple, str]]:
    """Each group's winner whose sweep checkpoint was evaluated on the test split."""
    return [(key, trial_id) for key, trial_id in context.winners.per_group.items()
            if (trial_id, CHECKPOINT) in context.confirmation.predictions]


@section("confidence_tables", needs="winner")
def confidence_tables(context: ReportContext) -> list[Block]:
    """Seed 003 Tables III and IV: validation mAP per detection minimum confidence (the training
    setting), for each preprocessing variant; each row is the best trial with that confidence."""
    trials, metric = context.experiment.trials, f"best_{context.experiment.metric}"
    blocks: list[Block] = [Heading("Validation mAP per detection minimum confidence"),
                           Paragraph("The document trained one model per confidence with the other settings fixed; "
                                     "here every confidence is crossed with the other axes, so each row shows the "
                                     "best trial at that confidence and the settings it had.")]
    for variant in sorted(trials["config/preprocessing"].dropna().unique()):
        rows = []
        for confidence in sorted(trials["config/detection_min_confidence"].dropna().unique()):
            subset = trials[(trials["config/preprocessing"] == variant)
                            & (trials["config/detection_min_confidence"] == confidence)]
            finite = subset[np.isfinite(subset[metric].astype(float))]
            if finite.empty:
                reasons = ", ".join(f"{n} {r}" for r, n in subset["stop_reason"].value_counts().items())
                rows.append({"Detection minimum confidence": confidence, "Val mAP@0.5": f"— ({reasons})",
                             "Trial": "—", "Other settings": "—"})
                continue
            best = finite.loc[finite[metric].astype(float).idxmax()]
            rows.append({"Detection minimum confidence": confidence, "Val mAP@0.5": number(float(best[metric]), 4),
                         "Trial": best["trial_id"], "Other settings": other_axes(context, best["trial_id"])})
        name = context.group_name((variant,))
        blocks.append(Table(pd.DataFrame(rows), caption=f"{name}: val mAP@0.5 per detection minimum confidence",
                            source=context.cite("confidence_tables")))
    return blocks


@section("detection_performance", needs="confirmation")
def detection_performance(context: ReportContext) -> list[Block]:
    """Seed 003 Tables VII and VIII: each preprocessing variant's best model on the validation
    and the test split, at the inference setting tuned on validation."""
    validation, test = [], []
    for key, trial_id in group_winners_with_checkpoints(context):
        model = context.confirmation.predictions[(trial_id, CHECKPOINT)][0]
        chosen = model.inference
        grid = pd.DataFrame(model.training.get("inference_grid", []))
        at = grid[np.isclose(grid["min_confidence"], chosen["min_confidence"])
                  & np.isclose(grid["nms_iou"], chosen["nms_iou"])].iloc[0]
        name = {"Dataset": context.group_name(key), "Trial": trial_id,
                "Confidence / NMS": f"{chosen['min_confidence']:g} / {chosen['nms_iou']:g}"}
        validation.append({**name, **{label: number(float(at[metric]), 4) for label, metric in DETECTION_SCORES}})
        test.append({**name, **{label: estimate_text(context.estimate(trial_id, metric, CHECKPOINT), digits=4)
                                for label, metric in DETECTION_SCORES}})
    if not validation:
        return []
    return [Heading("Detection performance"),
            Paragraph("Each preprocessing variant's best trial (by validation mAP@0.5 during training), its best "
                      "checkpoint evaluated at the detection confidence and NMS IoU chosen on the validation split "
                      "(inference-time grid below, no retraining). Matches need IoU ≥ 0.5 and the same class; "
                      "accuracy is TP / (TP + FP + FN) as the document defines it. Test intervals resample test "
                      "images."),
            Table(pd.DataFrame(validation), caption="Performance on the validation split",
                  source=context.cite("validation_performance")),
            Table(pd.DataFrame(test), caption="Performance on the test split", source=context.cite("test_performance"))]


@section("count_mae", needs="confirmation")
def count_mae(context: ReportContext) -> list[Block]:
    """Seed 003 Table X: per class the annotated and the automatic count on the test split and
    the mean absolute count error per image; the per-image counts go to a CSV next to the report."""
    from trainables.detection_inference import postprocess
    from trainables.metrics import count_table

    rows, files = [], []
    for key, trial_id in group_winners_with_checkpoints(context):
        model = context.confirmation.predictions[(trial_id, CHECKPOINT)][0]
        test = context.confirmation.test_of(trial_id)
        detections = postprocess(model.outputs, **model.inference)
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
