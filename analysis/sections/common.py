"""Sections any study can list: the summary, the winner's model performance, the confirmation
of the candidates on the test split, training curves, the document's targets and claims
(``checks``), and the environment. The sections about the sweep itself (``sweep``, ``trials``)
are in ``sweep``."""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import figures, stats
from analysis.document import Block, Bullets, Figure, Heading, Paragraph, Table
from analysis.rerun import CHECKPOINT, RETRAINED, metric_on_test
from analysis.stats import Estimate, Undefined
from sweeps.environment import code_and_packages, environment_differences, recorded_environment
from sweeps.report_spec import (
    QUANTITIES,
    WINNER,
    BestGroup,
    Check,
    ClassCount,
    Diverged,
    Quantity,
    ReportSpecError,
    TrialScore,
    WinnerScore,
    axis_values_text,
)
from sweeps.space import ResolvedSweep
from trainables.config import config_keys
from trainables.metrics import metric_direction
from trainables.registry import get_trainable

from .base import (
    ReportContext,
    axis_values,
    comparison_text,
    duration,
    epochs_with_reason,
    estimate_mean,
    estimate_percent,
    estimate_text,
    mean_text,
    number,
    percent,
    section,
    validation_text,
    verdict_of,
)


@section("summary")
def summary(context: ReportContext) -> list[Block]:
    experiment, winners = context.experiment, context.winners
    counts = experiment.trials["stop_reason"].value_counts()
    blocks: list[Block] = [
        Heading("Summary"),
        Paragraph(profile_statement(context)),
        Paragraph(f"Sweep {experiment.spec.name} — {experiment.spec.study}. {len(experiment.trials)} trial(s): "
                  + ", ".join(f"{n} {reason}" for reason, n in counts.items())
                  + f". Trials are selected on {experiment.metric} ({experiment.mode}) of the validation split; "
                    "the test split is used only below, to confirm the candidates."
                  + (f" The winner was not chosen on {experiment.metric}: {winners.fallback}." if winners.fallback
                     else "")
                  + (f" {len(winners.unranked)} trial(s) that ran had no finite {winners.decided_by} on the "
                     f"validation split (it was undefined there) and were not ranked: {', '.join(winners.unranked)}."
                     if winners.unranked else "")),
    ]
    leakage = experiment.audit.get("leakage") or {}
    if leakage.get("exact_groups") or leakage.get("near_pairs"):
        blocks.append(Paragraph(
            f"Data audit: {leakage['exact_groups']} exact duplicate group(s) and {leakage['near_pairs']} "
            f"near-duplicate pair(s) of images span different splits (listed in data_audit.txt), e.g. "
            + "; ".join([" = ".join(g) for g in leakage["exact"][:2]]
                        + [f"{p['a']} ~ {p['b']}" for p in leakage["near"][:2]])
            + ". Test results of models that saw such a twin in training may be optimistic."))
    if winners.overall is None:
        blocks.append(Paragraph(f"No trial finished with a finite {experiment.metric}: every trial diverged, "
                                "errored or never ran, so there is no winner to confirm. The trial table below "
                                "says why each one ended."))
        return blocks
    items = [winner_sentence(context)]
    metric = metric_on_test(experiment.metric)
    if context.confirmation is not None:
        retrained = (f"; {context.seeds_label()} "
                     f"{estimate_text(context.estimate(winners.overall, metric, RETRAINED))}"
                     if context.retraining else "")
        items.append(f"Test {metric} of the winner: sweep checkpoint "
                     f"{estimate_text(context.estimate(winners.overall, metric, CHECKPOINT))}{retrained}.")
        items.append(tie_sentence(context))
        items += [f"Not confirmed: {failure}" for failure in context.confirmation.failures]
    blocks.append(Bullets(tuple(items)))
    return blocks


def winner_sentence(context: ReportContext) -> str:
    """The winner, its configuration and the validation value that chose it; where the
    sweep's metric was undefined on validation, the metric that decided instead."""
    winners, metric = context.winners, context.experiment.metric
    row = context.trial(winners.overall)
    head = f"Winner: trial {winners.overall} ({axis_values(context, winners.overall)})"
    if winners.fallback:
        return (f"{head}, chosen on {winners.decided_by} (best {number(row[f'best_{winners.decided_by}'], 4)}) "
                f"because {metric} was undefined on the validation split for every trial.")
    return f"{head}, best {metric} {number(row[f'best_{metric}'])} at epoch {int(row['best_epoch'])}."


def profile_statement(context: ReportContext) -> str:
    """The run's profile, plainly: whether its numbers are measured at the document's settings."""
    resolved = context.experiment.resolved
    changes = setting_changes(context)
    head = f"Profile: {profile_name(resolved)}{overrides_text(resolved)}"
    if not changes:
        return f"{head} — the document's own settings, so its numbers can be set beside the document's."
    if profile_name(resolved) == "full":
        return f"{head} — numbers are measured at settings that differ from the document's ({changes_text(changes)})."
    return (f"{head} — numbers are {profile_name(resolved)}-profile numbers, not the document's settings "
            f"({changes_text(changes)}).")


def tie_sentence(context: ReportContext) -> str:
    comparisons = context.confirmation.comparisons
    metric = metric_on_test(context.experiment.metric)
    if comparisons.empty:
        return f"No other candidate to compare with the winner on test {metric}."
    tied = list(comparisons.loc[comparisons["verdict"] == "tied", "trial_id"])
    better = list(comparisons.loc[comparisons["verdict"] == "better", "trial_id"])
    apart = list(comparisons.loc[comparisons["verdict"] == stats.NOT_COMPARABLE, "trial_id"])
    text = (f"Statistically tied with the winner on test {metric} (paired bootstrap over test images, "
            f"{context.settings.confidence:.0%}): " + (", ".join(tied) if tied else "none") + ".")
    if better:
        text += " Significantly better on test than the validation winner: " + ", ".join(better) + "."
    if apart:
        text += (f" Not comparable with the winner on test {metric}: "
                 + "; ".join(f"{t} ({verdict_of(context, t).removeprefix(stats.NOT_COMPARABLE + ': ')})" for t in apart)
                 + ".")
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
            estimate_mean(context.estimate(winner, "loss", CHECKPOINT), 4),
            estimate_percent(context.estimate(winner, "accuracy", CHECKPOINT), 2),
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


@section("confirmation", needs="confirmation")
def confirmation_section(context: ReportContext) -> list[Block]:
    experiment, winners = context.experiment, context.winners
    metric = metric_on_test(experiment.metric)
    rows = []
    for candidate in winners.candidates:
        row = context.trial(candidate.trial_id)
        rows.append({"Trial": candidate.trial_id, "Roles": "; ".join(candidate.roles),
                     "Config": axis_values(context, candidate.trial_id),
                     f"Val {metric}": validation_text(row, experiment.metric),
                     f"Test {metric}, sweep checkpoint":
                         estimate_text(context.estimate(candidate.trial_id, metric, CHECKPOINT)),
                     **({f"Test {metric}, {context.seeds_label()}":
                         estimate_text(context.estimate(candidate.trial_id, metric, RETRAINED))}
                        if context.retraining else {}),
                     "Δ vs winner [CI]": comparison_text(context, candidate.trial_id),
                     "Verdict": verdict_of(context, candidate.trial_id)})
    blocks: list[Block] = [
        Heading("Confirmation on the test split"),
        Paragraph("Candidates: the best trials overall and the best of every group. Each is evaluated from its best "
                  "sweep checkpoint" + (f" and {retrained_whom(context)} retrained from scratch with seeds "
                                        f"{list(context.settings.seed_values)} as one Ray Tune run"
                                        if context.retraining else "")
                  + f"; intervals resample test images ({context.settings.bootstrap} resamples). "
                    f"{tie_sentence(context)}"),
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


def retrained_whom(context: ReportContext) -> str:
    """Who the seeds retrained: every candidate, or the winner alone (``--retrain winner``)."""
    return "each" if context.settings.retrain == "candidates" else "the overall winner alone (--retrain winner)"


@section("checks", needs="confirmation")
def checks(context: ReportContext) -> list[Block]:
    changes = setting_changes(context)
    valid = setting_names(context)
    rows, compared = [], []
    for check in context.spec.checks:
        measured, shown = measure(context, check.quantity)
        relevant = changes_for(context, check, changes, valid)
        compared.append((check, not relevant))
        rows.append({"Source": check.source, "Kind": check.kind, "Statement": check.statement,
                     "Document": f"{check.op} {check.value}" + (f" (± {check.tolerance})" if check.tolerance else ""),
                     "Measured": shown, "Verdict": verdict_text(check, measured, relevant)})
    if not rows:
        return []
    return [Heading("The document's targets and claims"),
            Paragraph(profile_sentence(context, changes, compared) + " Each target or claim of the document "
                      "beside what was measured here (test values: the mean over the retrained seeds, or the sweep "
                      "checkpoint where none were retrained)."),
            Table(pd.DataFrame(rows), caption="Targets and claims", source=context.cite("checks"))]


# A check's verdict: measured at settings comparable with the document's, it holds, is
# contradicted, or (a best-group claim) is tied; otherwise it is not comparable or not measured.
HOLDS, CONTRADICTED, TIED = "checked: holds", "contradicted", "tied"
NOT_COMPARABLE, NOT_MEASURED = "not comparable at this profile", "not measured"
# Settings that change no measurement: the evaluation batch size is speed only.
NO_EFFECT = frozenset({"eval_batch_size"})
# A reason lists these first when they differ (pretrained weights, input size, model, then how
# much data and training), then the other settings in the order the sweep records them.
FIRST = ("pretrained", "image_size", "model", "backbone", "images_per_split", "max_epochs", "epoch_samples",
         "steps_per_epoch")
SHOWN_CHANGES = 5
# How an unset setting reads where unset means "every one"; any other reads "default".
UNSET = {"epoch_samples": "all", "images_per_split": "all"}
# The data audit counts every image the dataset's reader keeps, before resizing and before a
# smoke sweep's subset (sweeps.data.prepare_sweep_data): these data settings change no class count.
NOT_COUNTED = frozenset({"image_size", "images_per_split"})


@dataclass(frozen=True)
class SettingChange:
    """A setting whose value in this run differs from the document's (its sweep's ``full``
    profile); a value of None is unset."""

    name: str
    document: object
    run: object

    def text(self) -> str:
        """``pretrained true→false``."""
        return f"{self.name} {setting_text(self.name, self.document)}→{setting_text(self.name, self.run)}"


def setting_text(name: str, value: object) -> str:
    """A setting's value as its YAML reads: ``true``, ``0.0001``, ``[8, 12]``; unset as ``UNSET`` says."""
    if value is None:
        return UNSET.get(name, "default")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(setting_text(name, item) for item in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def sweep_settings(resolved: ResolvedSweep) -> dict[str, object]:
    """The settings of a resolved sweep that can change what it measures: its data settings,
    fixed values and grid axes (their lists of values), without ``NO_EFFECT``."""
    settings = {**resolved.data.to_dict(), **resolved.fixed, **resolved.grid}
    return {name: value for name, value in settings.items() if name not in NO_EFFECT}


def setting_changes(context: ReportContext) -> tuple[SettingChange, ...]:
    """Every setting in which this run differs from the document's, ``FIRST`` first."""
    document, run = sweep_settings(context.document_sweep), sweep_settings(context.experiment.resolved)
    names = dict.fromkeys([*document, *run])
    changes = [SettingChange(name, document.get(name), run.get(name)) for name in names
               if document.get(name) != run.get(name)]
    rank = {name: index for index, name in enumerate(FIRST)}
    return tuple(sorted(changes, key=lambda change: rank.get(change.name, len(FIRST))))


def changes_text(changes: tuple[SettingChange, ...]) -> str:
    """The first ``SHOWN_CHANGES`` changes, and how many more there are."""
    more = len(changes) - SHOWN_CHANGES
    return ", ".join(change.text() for change in changes[:SHOWN_CHANGES]) + (f" and {more} more" if more > 0 else "")


def setting_names(context: ReportContext) -> frozenset[str]:
    """The names a check's ``depends_on`` may use: the trainable's config keys and the data
    settings and trial keys of this run and of the document's settings."""
    config_class = get_trainable(context.experiment.spec.trainable).config_class
    return frozenset(config_keys(config_class)).union(
        *(resolved.data.to_dict().keys() | resolved.fixed.keys() | resolved.grid.keys()
          for resolved in (context.experiment.resolved, context.document_sweep)))


def changes_for(context: ReportContext, check: Check, changes: tuple[SettingChange, ...],
                valid: frozenset[str]) -> tuple[SettingChange, ...]:
    """The changes that can alter ``check``'s measurement (none: it is comparable with the
    document's): those of the settings it ``depends_on``; without them, for a class count the
    data settings that change which images are read or how they are split, for a score every
    change. A ``depends_on`` name that is no setting is an error listing the valid ones."""
    if check.depends_on is not None:
        unknown = [name for name in check.depends_on if name not in valid]
        if unknown:
            raise ReportSpecError(f"sweep {context.experiment.spec.name!r}, check {check.statement!r}: depends_on "
                                  f"names no setting: {', '.join(unknown)}; valid: {', '.join(sorted(valid))}")
        return tuple(change for change in changes if change.name in check.depends_on)
    if isinstance(check.quantity, ClassCount):
        data = context.document_sweep.data.to_dict().keys() | context.experiment.resolved.data.to_dict().keys()
        return tuple(change for change in changes if change.name in data and change.name not in NOT_COUNTED)
    return changes


def verdict_text(check: Check, measured: float | str | Tie | None, changes: tuple[SettingChange, ...]) -> str:
    """The check's verdict: "not measured" when nothing was; "not comparable at this profile"
    with the settings that differ when ``changes`` (those that can alter it) is not empty;
    else "tied" when the group a best-group claim names shares the best value with another,
    "checked: holds" or "contradicted"."""
    if measured is None:
        return NOT_MEASURED
    if changes:
        return f"{NOT_COMPARABLE}: {changes_text(changes)}"
    if isinstance(measured, Tie):
        return TIED if check.value in measured.groups else CONTRADICTED
    return HOLDS if check.holds(measured) else CONTRADICTED


def profile_name(resolved: ResolvedSweep) -> str:
    """``smoke`` for a smoke sweep (the cpu profile made test-sized), else its profile."""
    return "smoke" if resolved.smoke else resolved.profile


def overrides_text(resolved: ResolvedSweep) -> str:
    """`` with --set max_epochs=5``: the run's ``--set`` items, if any."""
    return f" with --set {', '.join(resolved.overrides)}" if resolved.overrides else ""


def profile_label(resolved: ResolvedSweep) -> str:
    """``cpu profile``, ``smoke profile`` or ``full profile``, with the run's ``--set`` items."""
    return f"{profile_name(resolved)} profile{overrides_text(resolved)}"


def profile_sentence(context: ReportContext, changes: tuple[SettingChange, ...],
                     compared: list[tuple[Check, bool]]) -> str:
    """What this run's settings let its checks say: ``compared`` pairs each check with whether
    it is comparable with the document's."""
    label = profile_label(context.experiment.resolved)
    if not changes:
        return f"This run used the {label}, the document's own settings: every target and claim is checked."
    topics = []
    for topic, on_data in (("its models' scores", False), ("the data", True)):
        comparable = [ok for check, ok in compared if isinstance(check.quantity, ClassCount) == on_data]
        if comparable:
            topics.append(f"the claims on {topic} {judged(comparable)}")
    return (f"This run used the {label}, not the document's settings ({changes_text(changes)}): "
            + ", and ".join(topics) + ".")


def judged(comparable: list[bool]) -> str:
    """Whether claims (each comparable or not) are checked."""
    if all(comparable):
        return "are checked"
    if not any(comparable):
        return "are not comparable with the document's (their measured values are shown for reference)"
    return (f"are checked where they depend only on settings that did not change ({sum(comparable)} of "
            f"{len(comparable)}); the others are not comparable")


@dataclass(frozen=True)
class Tie:
    """Groups that share the best test value of a ``best_group`` check: no one of them is the
    best, so a claim naming one of them neither holds nor fails."""

    groups: tuple[str, ...]


def trials_with(context: ReportContext, where: dict[str, object]) -> pd.DataFrame:
    trials = context.experiment.trials
    mask = np.ones(len(trials), dtype=bool)
    for axis, value in where.items():
        column = trials.get(f"config/{axis}")
        if column is None:
            return trials.iloc[0:0]
        mask &= column.map(lambda v, wanted=value: same_value(v, wanted)).to_numpy(dtype=bool)
    return trials[mask]


def same_value(value, wanted) -> bool:
    try:
        return float(value) == float(wanted)
    except (TypeError, ValueError):
        return str(value) == str(wanted)


def trial_with(context: ReportContext, where: dict[str, object]) -> str | None:
    found = trials_with(context, where)
    return str(found["trial_id"].iloc[0]) if len(found) else None


def measure(context: ReportContext, quantity: Quantity) -> tuple[float | str | Tie | None, str]:
    """The measured value of a ``Check`` quantity, and how to show it."""
    if isinstance(quantity, WinnerScore):
        who = quantity.group
        trial_id = context.winners.overall if who == WINNER else group_trial(context, who)
        e = context.estimate(trial_id, quantity.metric) if trial_id else None
        if e is None:
            return None, f"no test {quantity.metric} of {who} ({trial_id})" if trial_id else f"no trial for {who}"
        return (None if isinstance(e, Undefined) else e.mean), f"{estimate_text(e)} ({who}, {trial_id})"
    if isinstance(quantity, ClassCount):
        kept = context.experiment.audit.get("kept", {})
        splits = list(kept) if quantity.split == "all" else [quantity.split]
        total = sum(int(kept.get(s, {}).get(quantity.class_name, 0)) for s in splits)
        return total, f"{total:,}"
    if isinstance(quantity, TrialScore):
        trial_id = trial_with(context, quantity.where)
        e = context.estimate(trial_id, quantity.metric, CHECKPOINT) if trial_id else None
        if e is None:
            return None, f"no evaluated trial with {axis_values_text(quantity.where)}"
        if isinstance(e, Undefined):
            return None, f"{e.format()} (sweep checkpoint {trial_id})"
        return e.mean, f"{number(e.mean)} [{number(e.low)}, {number(e.high)}] (sweep checkpoint {trial_id})"
    if isinstance(quantity, Diverged):
        chosen = trials_with(context, quantity.where)
        if chosen.empty:
            return None, f"no trial with {axis_values_text(quantity.where)}"
        diverged = int((chosen["stop_reason"] == "diverged").sum())
        verdict = "all" if diverged == len(chosen) else ("none" if not diverged else "some")
        return verdict, f"{diverged} of {len(chosen)} diverged; the others " + (
            ", ".join(f"{n} {r}" for r, n in chosen.loc[chosen["stop_reason"] != "diverged", "stop_reason"]
                      .value_counts().items()) or "—")
    if isinstance(quantity, BestGroup):
        best = best_groups(context, quantity.metric)
        if len(best) > 1:
            return Tie(tuple(best)), f"tied: {', '.join(best)}"
        return (best[0], best[0]) if best else (None, "n/a")
    raise TypeError(f"unknown check quantity {quantity!r}; valid: {', '.join(k.__name__ for k in QUANTITIES)}")


def best_groups(context: ReportContext, metric: str) -> list[str]:
    """The groups whose winners have the best test value of ``metric``, with every group tied
    with it: the same value, or a difference whose paired bootstrap interval holds 0."""
    scored = {t: e.mean for t in context.winners.per_group.values()
              if isinstance(e := context.estimate(t, metric), Estimate)}
    if not scored:
        return []
    pick = max if metric_direction(metric) == "max" else min
    best = pick(scored, key=scored.get)
    return [context.group_name(key) for key, trial_id in context.winners.per_group.items() if trial_id in scored
            and (scored[trial_id] == scored[best] or paired_tie(context, best, trial_id, metric))]


def paired_tie(context: ReportContext, first: str, second: str, metric: str) -> bool:
    """Whether the paired bootstrap comparison on the test split found ``first`` and ``second``
    tied on ``metric``. Candidates are compared with the overall winner only, so this knows
    of a pair that includes it, on the metrics compared."""
    reference = context.confirmation.reference
    other = second if first == reference else first if second == reference else None
    comparisons = context.confirmation.comparisons
    found = comparisons[(comparisons["trial_id"] == other) & (comparisons["metric"] == metric)]
    return bool(len(found)) and found["verdict"].iloc[0] == "tied"


def group_trial(context: ReportContext, label: str) -> str | None:
    for key, trial_id in context.winners.per_group.items():
        if context.group_name(key) == label:
            return trial_id
    return None


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
            Table(frame, caption="Environment", source=context.cite("environment")),
            *recorded_environment_blocks(context)]


def recorded_environment_blocks(context: ReportContext) -> list[Block]:
    """What the sweep recorded in ``sweep.json`` when it ran: code, machine, data, packages."""
    recorded = recorded_environment(context.experiment.directory)
    if not recorded:
        return [Paragraph("The experiment records no environment (it was run by an older medsweep).")]
    commit = recorded.get("medsweep_commit") or "not a git checkout"
    rows = [("medsweep commit", commit + (" (with uncommitted changes)" if recorded.get("medsweep_dirty") else "")),
            ("Python", recorded.get("python")), ("Platform", recorded.get("platform")),
            ("Driver GPUs", ", ".join(recorded.get("gpus") or []) or "none"),
            ("Data directory", recorded["data"].get("data_dir") or "the user cache")]
    for key, variant in recorded["data"]["variants"].items():
        label = "" if key == "None" else f" ({key})"
        rows += [(f"Data read from{label}", variant["root"]), (f"Data fingerprint{label}", variant["fingerprint"]),
                 (f"Split manifest SHA-256{label}", variant["split_manifest_sha256"])]
    packages = pd.DataFrame({"Package": list(recorded["packages"]),
                             "Version": [version or "not installed" for version in recorded["packages"].values()]})
    differences = environment_differences(recorded, code_and_packages())
    note = ("This report ran under the same code and packages." if not differences else
            "This report ran under a different environment: " + "; ".join(differences) + ".")
    return [Table(pd.DataFrame(rows, columns=["", "Sweep"]), caption="Recorded when the sweep ran (sweep.json)"),
            Table(packages, caption="Runtime packages of the sweep"), Paragraph(note)]


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
