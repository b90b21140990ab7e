"""What a study's report contains, declared in its sweep registry entry: the sections (by name,
from ``analysis.sections.SECTIONS``), how its compared groups are called in its document, and
the targets and claims of the document to check against measurements."""

from __future__ import annotations

from dataclasses import dataclass, field

OPERATORS = (">", "<", "≈", "=")


@dataclass(frozen=True)
class Check:
    """A number the study's document states, to set beside what was measured.

    ``quantity`` names the measurement:
      ``test:<metric>@<group label>`` or ``test:<metric>@winner`` — a test-split metric of the
      group's (or the overall) winner, averaged over its retrained seeds;
      ``count:<split|all>:<class>`` — patches of a class in the audited data;
      ``best_group:<metric>`` — which group is best on that test metric;
      ``config:<metric>@<axis>=<value>,...`` — a test metric of the trial with exactly those grid
      values (its sweep checkpoint; needs ``evaluate_all_trials``);
      ``diverged:<axis>=<value>,...`` — "all", "none" or "k of n": how many such trials diverged.
    ``kind`` is "target" (a goal the document set) or "claim" (a statement of fact).
    """

    source: str
    statement: str
    quantity: str
    op: str
    value: float | str
    kind: str = "claim"
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise ValueError(f"Check {self.statement!r}: op {self.op!r} is unknown; valid: {', '.join(OPERATORS)}")
        if self.kind not in ("target", "claim"):
            raise ValueError(f"Check {self.statement!r}: kind must be 'target' or 'claim', got {self.kind!r}")

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
