"""What a study's report contains, declared in its study file's ``report:``: the sections (by name,
from ``analysis.sections.SECTIONS``), how its compared groups are called in its document, and
the targets and claims of the document to check against measurements."""

from __future__ import annotations

from dataclasses import dataclass, field

from trainables.errors import MedsweepError, UnknownNameError
from trainables.metrics import metric_direction

OPERATORS = (">", "<", "≈", "=")
WINNER = "winner"
COUNT_SPLITS = ("all", "train", "val", "test")
# The report sections a study may list, by name: ``analysis.sections`` registers one function
# per name and refuses a name missing here, so a study file's sections are checked before the
# analysis (a layer above) is imported.
SECTION_NAMES = ("summary", "model_performance", "model_comparison", "trial_tables", "confusion_matrix",
                 "classification_report", "roc_auc", "error_analysis", "sample_predictions", "ablation",
                 "confirmation", "checks", "training_curves", "environment", "confidence_tables",
                 "detection_performance", "count_mae", "inference_grid", "detection_images",
                 "segmentation_tables", "inference_settings", "mask_grid", "sweep", "trials")


class ReportSpecError(MedsweepError, ValueError):
    """A report check that names something its sweep does not have."""


@dataclass(frozen=True, kw_only=True)
class WinnerScore:
    """A test-split metric of a compared group's winner (``group``: its name in ``group_labels``)
    or of the overall winner (``group=WINNER``), averaged over its retrained seeds."""

    metric: str
    group: str = WINNER


@dataclass(frozen=True, kw_only=True)
class TrialScore:
    """A test metric of the trial with exactly the grid values ``where`` (its sweep checkpoint;
    needs ``evaluate_all_trials``)."""

    metric: str
    where: dict[str, object]


@dataclass(frozen=True, kw_only=True)
class ClassCount:
    """Patches (or images) of a class in the audited data: one split's, or ``split="all"``."""

    split: str
    class_name: str


@dataclass(frozen=True, kw_only=True)
class BestGroup:
    """Which compared group is best on a test metric."""

    metric: str


@dataclass(frozen=True, kw_only=True)
class Diverged:
    """"all", "none" or "some": how many trials with the grid values ``where`` diverged."""

    where: dict[str, object]


QUANTITIES = (WinnerScore, TrialScore, ClassCount, BestGroup, Diverged)
Quantity = WinnerScore | TrialScore | ClassCount | BestGroup | Diverged


def axis_values_text(where: dict[str, object]) -> str:
    """``{"lr": 0.001, "dropout": 0.0}`` → ``lr=0.001,dropout=0.0``."""
    return ",".join(f"{axis}={value}" for axis, value in where.items())


@dataclass(frozen=True, kw_only=True)
class Check:
    """A number the study's document states, to set beside what was measured: ``quantity``
    (one of ``QUANTITIES``) names the measurement, ``op`` and ``value`` the document's
    statement about it. ``kind`` is "target" (a goal the document set) or "claim" (a statement
    of fact).

    ``depends_on`` names the settings (data settings or trial config keys) the measurement
    depends on: a run whose other settings differ from the document's can still check it.
    None, the default, is the safe reading: a score depends on every setting, and a class count
    on every data setting that changes which images are read and how they are split (see the
    report's ``checks`` section)."""

    source: str
    statement: str
    quantity: Quantity
    op: str
    value: float | str
    kind: str = "claim"
    tolerance: float = 0.0
    depends_on: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise ValueError(f"Check {self.statement!r}: op {self.op!r} is unknown; valid: {', '.join(OPERATORS)}")
        if self.kind not in ("target", "claim"):
            raise ValueError(f"Check {self.statement!r}: kind must be 'target' or 'claim', got {self.kind!r}")
        if self.depends_on is not None and (not isinstance(self.depends_on, tuple) or not self.depends_on
                                            or not all(isinstance(name, str) for name in self.depends_on)):
            raise ValueError(f"Check {self.statement!r}: depends_on must be a non-empty tuple of setting names, "
                             f"for example ('optimizer', 'lr'), or None for every setting; got {self.depends_on!r}")

    def holds(self, measured: float | str) -> bool:
        if self.op == "=":
            return measured == self.value
        if self.op == "≈":
            return abs(float(measured) - float(self.value)) <= self.tolerance
        return float(measured) > float(self.value) if self.op == ">" else float(measured) < float(self.value)


@dataclass(frozen=True)
class ReportSpec:
    """``group_labels`` maps each group's axis values (in ``SweepSpec.group_by`` order) to the
    name the document uses; ``document`` names the source cited in table captions and
    ``citations`` where in it each section's table is (section name → "§6.1"); ``curves``
    adds validation metrics to the training-curve figure; ``evaluate_all_trials`` evaluates
    every trial's sweep checkpoint on the test split, for documents that tabulate them all."""

    document: str = ""
    sections: tuple[str, ...] = ("summary", "confirmation", "training_curves", "sweep", "trials")
    group_labels: tuple[tuple[tuple, str], ...] = field(default=())
    checks: tuple[Check, ...] = field(default=())
    citations: tuple[tuple[str, str], ...] = field(default=())
    curves: tuple[str, ...] = field(default=())
    evaluate_all_trials: bool = False

    def label(self, key: tuple) -> str | None:
        return dict(self.group_labels).get(tuple(key))

    def citation(self, topic: str) -> str:
        return dict(self.citations).get(topic, "")

    def validate(self, sweep: str) -> None:
        """Every check measures a known quantity of a metric declared in ``METRIC_DIRECTIONS``
        and names one of this report's groups (by its name in ``group_labels``; a report without
        them can name only the winner) or the winner; the error names the sweep, the check and
        the valid choices."""
        labels = tuple(name for _, name in self.group_labels)
        groups = (WINNER, *labels)
        for check in self.checks:
            where = f"sweep {sweep!r}, check {check.statement!r}"
            quantity = check.quantity
            if not isinstance(quantity, QUANTITIES):
                raise ReportSpecError(f"{where}: quantity {quantity!r} is unknown; valid: "
                                      f"{', '.join(kind.__name__ for kind in QUANTITIES)}")
            if isinstance(quantity, WinnerScore | TrialScore | BestGroup):
                try:
                    metric_direction(quantity.metric)
                except UnknownNameError as exc:
                    raise ReportSpecError(f"{where}: {exc}") from None
            if isinstance(quantity, WinnerScore) and quantity.group not in groups:
                raise ReportSpecError(f"{where}: group {quantity.group!r} is not one of the report's groups; "
                                      f"valid: {', '.join(map(repr, groups))}")
            if isinstance(quantity, BestGroup) and check.value not in labels:
                raise ReportSpecError(f"{where}: the best group {check.value!r} is not one of the report's groups; "
                                      f"valid: {', '.join(map(repr, labels))}")
            if isinstance(quantity, ClassCount) and quantity.split not in COUNT_SPLITS:
                raise ReportSpecError(f"{where}: split {quantity.split!r} is unknown; valid: "
                                      f"{', '.join(COUNT_SPLITS)}")
