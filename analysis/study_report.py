"""Writing a study's report: ``write_report(ReportOptions(...))`` picks the winners, confirms
them on the test split, and writes the report (Markdown, self-contained HTML, figures,
results.csv).

``python -m analysis.report`` (analysis/report.py) is the command line over it; tests call
``write_report`` directly.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from analysis.document import Block, Bullets, Document, Heading, Paragraph, to_html, to_markdown
from analysis.rerun import Confirmation, RerunSettings, confirm_on_test
from analysis.results import load_experiment
from analysis.sections import ReportContext, render_sections, validate_spec
from analysis.winners import pick_winners
from sweeps.choices import RETRAIN_CHOICES
from sweeps.environment import mismatch_warning, recorded_data_changes, recorded_data_dir, recorded_environment
from trainables.errors import MedsweepError


class ReportOptionsError(MedsweepError, ValueError):
    """Report options out of range, or an output folder that cannot be written."""


class NothingConfirmedError(MedsweepError, RuntimeError):
    """Not one candidate could be evaluated on the test split (the report says why for each)."""


@dataclass(frozen=True)
class ReportOptions:
    experiment_dir: str
    out: str | None = None
    seeds: int = 3
    retrain: str = "candidates"
    top_k: int = 3
    bootstrap: int = 1000
    confidence: float = 0.95
    data_dir: str | None = None
    address: str | None = None
    allow_data_change: bool = False

    def __post_init__(self) -> None:
        """Each count and the confidence in range; an error names the flag and its value."""
        for flag, value, least, meaning in (
                ("--seeds", self.seeds, 0, "retrainings per candidate; 0 evaluates the sweep checkpoints only"),
                ("--top-k", self.top_k, 1, "candidates besides each group's best"),
                ("--bootstrap", self.bootstrap, 1, "resamples of the test images")):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ReportOptionsError(f"{flag} {value!r}: must be a whole number of at least {least} ({meaning})")
        if self.retrain not in RETRAIN_CHOICES:
            raise ReportOptionsError(f"--retrain {self.retrain!r}: must be one of {', '.join(RETRAIN_CHOICES)}")
        if not 0 < self.confidence < 1:
            raise ReportOptionsError(f"--confidence {self.confidence!r}: must lie between 0 and 1, for example 0.95")


@dataclass(frozen=True)
class ReportOutcome:
    out_dir: Path
    markdown: Path
    html: Path
    document: Document
    confirmation: Confirmation | None
    seconds: float


def write_report(options: ReportOptions, *, echo: Callable[[str], None] = print) -> ReportOutcome:
    """Load the experiment, confirm its candidates on the test split and write the report."""
    started = time.perf_counter()
    experiment = load_experiment(options.experiment_dir)
    validate_spec(experiment.spec)
    spec = experiment.spec.report
    out_dir = writable_folder(Path(options.out) if options.out else experiment.directory / "report",
                              flag=f"--out {options.out}" if options.out else "the report folder")
    winners = pick_winners(experiment, top_k=options.top_k)
    echo(f"{experiment.spec.name}: {len(experiment.trials)} trials, {len(winners.ranking)} eligible; "
         f"winner {winners.overall or 'none'}"
         + (f" (chosen on {winners.decided_by}: {winners.fallback})" if winners.fallback else "")
         + f"; {len(winners.candidates)} candidate(s) to confirm on the test split")
    recorded = recorded_environment(experiment.directory)
    if warning := mismatch_warning(recorded, doing="evaluating and retraining"):
        echo(warning)
    settings = RerunSettings(seeds=options.seeds, retrain=options.retrain, bootstrap=options.bootstrap,
                             confidence=options.confidence, address=options.address,
                             data_dir=options.data_dir or recorded_data_dir(recorded),
                             allow_data_change=options.allow_data_change)
    confirmation = (confirm_on_test(experiment, winners, settings, evaluate_all=spec.evaluate_all_trials, echo=echo)
                    if winners.overall else None)
    for failure in confirmation.failures if confirmation else ():
        echo(f"warning: not confirmed: {' '.join(failure.split())[:400]}")
    document = Document(title=f"{experiment.spec.name} — {experiment.directory.name}")
    context = ReportContext(experiment=experiment, winners=winners, confirmation=confirmation, spec=spec,
                            figures_dir=out_dir / "figures", settings=settings)
    document.add(*render_sections(context), *data_provenance_blocks(experiment.directory, confirmation))
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = out_dir / "report.md"
    html = out_dir / "report.html"
    markdown.write_text(to_markdown(document, figures_relative_to=out_dir))
    html.write_text(to_html(document))
    experiment.trials.to_csv(out_dir / "results.csv", index=False)
    if confirmation is not None:
        confirmation.estimates.to_csv(out_dir / "test_estimates.csv", index=False)
    seconds = time.perf_counter() - started
    echo(f"Report written in {seconds:.0f} s: {markdown}, {html} ({len(document.tables)} tables, "
         f"{len(document.figures)} figures)")
    if confirmation is not None and not confirmation.predictions:
        first = " ".join(confirmation.failures[0].split())[:300]
        raise NothingConfirmedError(f"no candidate of {experiment.directory.name} could be evaluated on the test "
                                    f"split ({len(confirmation.failures)} failure(s), listed above; the first: "
                                    f"{first}); fix their cause and run the report again")
    return ReportOutcome(out_dir=out_dir, markdown=markdown, html=html, document=document,
                         confirmation=confirmation, seconds=seconds)


def data_provenance_blocks(experiment_dir: Path, confirmation: Confirmation | None) -> list[Block]:
    """The report's record of its data: whether the data it read matched the sweep's fingerprint
    and split lists (and every change it went on with, ``--allow-data-change``), and each resume
    that went on with changed data."""
    blocks: list[Block] = [Heading("Data compared with the sweep's record")]
    check = confirmation.data_check if confirmation else None
    if check is None:
        blocks.append(Paragraph("This report read no data (there was no trial to confirm on the test split)."))
    elif not check.changes:
        blocks.append(Paragraph(f"The data this report read matches the sweep's record (compared: {check.compared})."))
    else:
        blocks += [Paragraph(f"The data this report read differs from the sweep's record (compared: {check.compared}); "
                             f"the report went on because --allow-data-change was given:"),
                   Bullets(tuple(check.changes))]
    for entry in recorded_data_changes(experiment_dir):
        blocks += [Paragraph(f"The {entry['doing']} of {entry['when']} went on with data that differed from the "
                             f"sweep's record (--allow-data-change):"), Bullets(tuple(entry["changes"]))]
    return blocks


def writable_folder(folder: Path, *, flag: str) -> Path:
    """``folder``, created if missing, once it is known to be a folder this user can write:
    checked before anything is evaluated or retrained."""
    fix = "pass --out a folder you can write (it is created when missing)"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ReportOptionsError(f"{flag}: cannot create {folder} ({reason}); {fix}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ReportOptionsError(f"{flag}: {folder} is not writable by this user; {fix}")
    return folder
