"""The report-section registry (``SECTIONS``, the ``section`` decorator, rendering and spec
validation), the ``ReportContext`` every section receives, the number and text formatting
every section shares, and the trial lookups that sections of more than one study kind use."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.document import Block, Heading, Table
from analysis.rerun import CHECKPOINT, RETRAINED, Confirmation, RerunSettings
from analysis.results import Experiment
from analysis.stats import NOT_COMPARABLE, Estimate, Undefined
from analysis.winners import Winners, format_group, group_key
from sweeps.report_spec import SECTION_NAMES, ReportSpec, ReportSpecError
from sweeps.space import ResolvedSweep, resolve
from sweeps.spec import SweepSpec
from trainables.metrics import undefined_reasons
from trainables.registries import Registry
from trainables.registry import get_trainable


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
        if self.confirmation:
            return self.confirmation.class_names
        return tuple(self.experiment.audit.get("class_names", ()))

    def cite(self, topic: str) -> str:
        """Where in the study's document a table comes from ("" for medsweep's own tables)."""
        where = self.spec.citation(topic)
        return f"{self.spec.document} {where}" if where else ""

    @cached_property
    def document_sweep(self) -> ResolvedSweep:
        """The sweep at its document's settings (the ``full`` profile, no overrides), which the
        report compares this run's settings with."""
        return resolve(self.experiment.spec, profile="full")

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

    def estimate(self, trial_id: str, metric: str, kind: str | None = None) -> Estimate | Undefined | None:
        """A metric's test estimate for a candidate (see ``Confirmation.estimate``); ``Undefined``
        with the reason where the test split leaves the metric without a value, so no section
        shows or compares a nan; None where the candidate has no test results."""
        found = self.confirmation.estimate(trial_id, metric, kind) if self.confirmation else None
        if found is None:
            return None
        reason = self.undefined_reason(trial_id, metric)
        if reason is None and not math.isfinite(found.mean):
            reason = f"{metric} has no finite value on the test split"
        return found if reason is None else Undefined(reason)

    def undefined_reason(self, trial_id: str, metric: str) -> str | None:
        """Why the trial's test split leaves ``metric`` undefined (a classification split
        without a class's positives or negatives, ``undefined_reasons``), or None."""
        test = self.confirmation.test_of(trial_id) if self.confirmation else None
        if test is None or self.experiment.spec.trainable != "classification":
            return None
        return undefined_reasons(test.labels, self.class_names, "test").get(metric)

    def seeds_label(self) -> str:
        return f"retrained × {self.settings.seeds} seeds: mean ± std [{self.settings.confidence:.0%} CI]"

    @property
    def retraining(self) -> bool:
        return self.settings.seeds > 0


NEEDS = ("", "winner", "confirmation", "checkpoint")


@dataclass(frozen=True)
class SectionEntry:
    """A section and what it needs to run: nothing, a winner, test-split results of the
    candidates (``confirmation``), or the winner's own sweep checkpoint on the test split.
    ``trainable`` names the kind of study the section reads ("" for any): only a study whose
    trainable takes that trainable's config may list it."""

    function: Callable[[ReportContext], list[Block]]
    needs: str
    trainable: str = ""


SECTIONS: Registry[SectionEntry] = Registry("report section")


def section(name: str, *, needs: str = "", trainable: str = ""):
    if needs not in NEEDS:
        raise ValueError(f"section {name!r}: needs={needs!r} is unknown; valid: {NEEDS}")
    if name not in SECTION_NAMES:
        raise ValueError(f"section {name!r}: add its name to SECTION_NAMES in sweeps/report_spec.py, where "
                         f"study files are checked")

    def register(function: Callable[[ReportContext], list[Block]]):
        SECTIONS.add(name, SectionEntry(function, needs, trainable))
        return function
    return register


def get_section(name: str) -> SectionEntry:
    return SECTIONS.get(name)


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


def validate_spec(sweep: SweepSpec) -> None:
    """Unknown section names, and sections of another kind of study, fail before any work.

    A study file's section names are checked when it loads (against ``SECTION_NAMES``, which
    ``section`` keeps in step with this registry); which kind of study a section is for is
    known only here, in ``analysis``, so ``python -m analysis.report`` runs this first and
    tests/test_registries.py runs it for every built-in study."""
    config_class = get_trainable(sweep.trainable).config_class
    for name in sweep.report.sections:
        entry = get_section(name)
        if entry.trainable and get_trainable(entry.trainable).config_class is not config_class:
            raise ReportSpecError(f"sweep {sweep.name!r}: report section {name!r} is for {entry.trainable} studies "
                                  f"only, and this sweep's trainable is {sweep.trainable!r}")


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


def estimate_mean(e: Estimate | Undefined | None, digits: int = 3) -> str:
    """An estimate's mean alone; an undefined metric reads "undefined: <reason>"."""
    if isinstance(e, Undefined):
        return e.format()
    return "n/a" if e is None else number(e.mean, digits)


def estimate_percent(e: Estimate | Undefined | None, digits: int = 1) -> str:
    """An estimate's mean as a percentage; an undefined metric reads "undefined: <reason>"."""
    if isinstance(e, Undefined):
        return e.format()
    return "n/a" if e is None else percent(e.mean, digits)


def estimate_text(e: Estimate | Undefined | None, *, scale: float = 1.0, digits: int = 3) -> str:
    """Mean ± std [interval], scaled; an undefined metric reads "undefined: <reason>"."""
    if e is None or isinstance(e, Undefined):
        return "n/a" if e is None else e.format()
    scaled = Estimate(mean=e.mean * scale, std=e.std * scale, low=e.low * scale, high=e.high * scale, seeds=e.seeds)
    return scaled.format(digits)


def validation_text(row: pd.Series, metric: str) -> str:
    """A trial's best validation value of ``metric``, or that it had none (the metric was
    undefined on the validation split, or the trial never reported it)."""
    value = row.get(f"best_{metric}", math.nan)
    return number(value) if math.isfinite(value) else f"undefined: no finite {metric} on val"


def axis_values(context: ReportContext, trial_id: str) -> str:
    config = context.experiment.config(trial_id)
    return ", ".join(f"{axis}={config.get(axis)}" for axis in context.experiment.axes)


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


def not_evaluated(trial: pd.Series) -> str:
    """What a table cell says for a trial without a checkpoint to evaluate."""
    return "NaN (diverged)" if trial["stop_reason"] == "diverged" else f"— ({trial['stop_reason']})"


# ---- helpers of more than one study kind -------------------------------------------------

def trials_of_group(context: ReportContext, key: tuple) -> pd.DataFrame:
    trials = context.experiment.trials
    mask = [group_key(row, context.winners.group_by) == tuple(key) for _, row in trials.iterrows()]
    return trials[mask]


def other_axes(context: ReportContext, trial_id: str, *, besides: tuple[str, ...] = ()) -> str:
    """The trial's grid values on the axes its table does not already show: not the group's,
    nor ``besides``."""
    config = context.experiment.config(trial_id)
    shown = (*context.winners.group_by, *besides)
    others = [a for a in context.experiment.axes if a not in shown]
    return ", ".join(f"{a}={config.get(a)}" for a in others) or "—"


def verdict_of(context: ReportContext, trial_id: str) -> str:
    """How a candidate compares with the winner on test: better, worse, tied, or not
    comparable with the reason; "winner" for the winner itself."""
    if trial_id == context.winners.overall:
        return "winner"
    found = context.confirmation.comparisons
    found = found[found["trial_id"] == trial_id]
    if not found.empty:
        row = found.iloc[0]
        if row["verdict"] == NOT_COMPARABLE:
            return f"{NOT_COMPARABLE}: {not_comparable_reason(context, trial_id, row['metric'], row['kind'])}"
        return str(row["verdict"])
    other_split = context.confirmation.test_of(trial_id) is not context.confirmation.test
    return "not compared: another test split" if other_split else "n/a"


def not_comparable_reason(context: ReportContext, trial_id: str, metric: str, kind: str) -> str:
    """Why a candidate and the winner cannot be compared on ``metric``: the metric is
    undefined for one of them (its reason), or the bootstrap found no defined difference."""
    for who in (trial_id, context.winners.overall):
        e = context.estimate(who, metric, kind)
        if isinstance(e, Undefined):
            return f"{metric} is undefined, {e.reason}"
    return f"the difference in {metric} is undefined on every resample of the test images"


def comparison_text(context: ReportContext, trial_id: str) -> str:
    """A candidate's difference from the winner with its interval and the models compared,
    "—" without a comparison, or "not comparable: <reason>"."""
    found = context.confirmation.comparisons
    found = found[found["trial_id"] == trial_id]
    if found.empty:
        return "—"
    row = found.iloc[0]
    if row["verdict"] == NOT_COMPARABLE:
        return verdict_of(context, trial_id)
    return f"{row['difference']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}] ({row['kind']})"


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
