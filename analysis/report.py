"""``python -m analysis.report EXPERIMENT_DIR``: the command line of
``analysis.study_report.write_report`` (pick the winners, confirm them on the test split, write
the study's report).

Only the argument parser is imported up front, so ``--help`` and usage errors answer at once;
the analysis (PyTorch, Ray, matplotlib) is imported once the arguments have parsed.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from sweeps.choices import RETRAIN_CHOICES
from trainables.errors import cli_exit_code

if TYPE_CHECKING:
    from analysis.study_report import ReportOptions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.report",
        description="Analyse a finished or interrupted sweep: pick the best trial overall and per compared "
                    "group by the sweep's own metric, confirm the candidates on the test split (best sweep "
                    "checkpoint, plus retraining with several seeds on Ray Tune, with bootstrap confidence "
                    "intervals), and write report.md, a self-contained report.html, figures/*.png and "
                    "results.csv. Retrained models are cached: a second run retrains nothing.",
        epilog="Example:\n  python -m analysis.report runs/bccd_imbalance_20261123-101500 --seeds 3",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment_dir", help="the experiment directory `python -m sweeps.run` printed")
    parser.add_argument("--out", help="where to write the report (default: EXPERIMENT_DIR/report)")
    parser.add_argument("--seeds", type=int, default=3,
                        help="retrain each candidate from scratch with this many seeds (default 3; 0: evaluate "
                             "the sweep checkpoints only)")
    parser.add_argument("--retrain", choices=RETRAIN_CHOICES, default="candidates",
                        help="which candidates the seeds retrain: every one (default), or the overall winner "
                             "alone, the others scored from their sweep checkpoints (where retraining all would "
                             "take hours, as on a CPU)")
    parser.add_argument("--top-k", type=int, default=3,
                        help="candidates besides each group's best: the top K trials overall (default 3)")
    parser.add_argument("--bootstrap", type=int, default=1000,
                        help="bootstrap resamples of the test images for confidence intervals (default 1000)")
    parser.add_argument("--confidence", type=float, default=0.95, help="interval confidence (default 0.95)")
    parser.add_argument("--data-dir", help="directory holding the dataset folder (default: the one the sweep read, "
                                           "recorded in sweep.json; then $MEDSWEEP_DATA_DIR, then the user cache)")
    parser.add_argument("--address", help="retrain on an existing Ray cluster (for example 'auto')")
    parser.add_argument("--allow-data-change", action="store_true",
                        help="go on when the data read today differs from the sweep's record (its fingerprint "
                             "or the split lists of splits.json); the report records what changed")
    return parser


def options_from_args(args: argparse.Namespace) -> ReportOptions:
    """The parsed command line as checked ``ReportOptions``."""
    from analysis.study_report import ReportOptions

    return ReportOptions(experiment_dir=args.experiment_dir, out=args.out, seeds=args.seeds, retrain=args.retrain,
                         top_k=args.top_k,
                         bootstrap=args.bootstrap, confidence=args.confidence, data_dir=args.data_dir,
                         address=args.address, allow_data_change=args.allow_data_change)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and write the report: exit 0, 2 on bad input (one ``error:`` line), 130
    interrupted."""
    args = build_parser().parse_args(argv)
    from analysis.study_report import write_report

    return cli_exit_code(lambda: write_report(options_from_args(args)))


if __name__ == "__main__":
    sys.exit(main())
