"""``python -m sweeps.run``: the command line of ``sweeps.sweep.run_sweep``.

Only the argument parser is imported up front, so ``--help`` and usage errors answer at once;
the sweep machinery (PyTorch, Ray) is imported once the arguments have parsed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from sweeps.arguments import build_parser
from trainables.errors import INTERRUPTED_EXIT, MedsweepError, SearchSpaceError, interrupts_raise

if TYPE_CHECKING:
    from sweeps.sweep import SweepOptions


def options_from_args(args: argparse.Namespace) -> SweepOptions:
    """The parsed command line as checked ``SweepOptions`` (``--set-file`` items first)."""
    from sweeps.sweep import SweepOptions

    from_file = overrides_from_file(args.set_file)
    return SweepOptions(
        name=args.name, overrides=from_file + tuple(args.overrides),
        override_origins=(f"--set-file {args.set_file}:",) * len(from_file),
        allow_large_images=args.allow_large_images, allow_data_change=args.allow_data_change,
        profile=args.profile, smoke=args.smoke,
        num_samples=args.num_samples, storage=args.storage, storage_shared=args.storage_shared,
        experiment_name=args.experiment_name, resume=args.resume, address=args.address,
        gpus_per_trial=args.gpus_per_trial, cpus_per_trial=args.cpus_per_trial,
        max_failures=args.max_failures, seed=args.seed, search=args.search,
        optuna_storage=args.optuna_storage, wandb=args.wandb, data_dir=args.data_dir,
        check_data=args.check_data, strict_data=args.strict_data, plan=args.plan,
        plan_seconds_per_epoch=args.plan_seconds_per_epoch, verbose=args.verbose, dashboard=args.dashboard)


def overrides_from_file(path: str | None) -> tuple[str, ...]:
    """``KEY=VALUE`` items from a JSON/YAML mapping; lists stay lists (grid axes)."""
    if not path:
        return ()
    try:
        mapping = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise SearchSpaceError(f"--set-file {path}: not a text file (not UTF-8); give a JSON or YAML mapping "
                               f"of KEY: VALUE") from None
    except (OSError, yaml.YAMLError) as exc:
        reason = " ".join(str(exc).split())
        raise SearchSpaceError(f"--set-file {path}: cannot read it ({reason}); give a JSON or YAML mapping "
                               f"of KEY: VALUE") from exc
    if not isinstance(mapping, dict):
        raise SearchSpaceError(f"--set-file {path}: expected a mapping of KEY: VALUE")
    return tuple(f"{key}={json.dumps(value)}" for key, value in mapping.items())


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the sweep, and return the exit code: 0 done, 1 a trial failed, 2 bad
    input (one ``error:`` line), 130 interrupted (with the command that resumes it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list is None and not args.name:
        from search_spaces import builtin_study_paths
        parser.error(f"name a sweep (valid: {', '.join(path.stem for path in builtin_study_paths())}) or a study "
                     f"file (path/to/study.yaml), or use --list")
    from sweeps.sweep import interrupted_message, list_sweeps, run_sweep

    interrupts_raise()  # the modules are loaded: from here a Ctrl-C is the sweep's to handle
    options = None
    try:
        if args.list is not None:
            print(list_sweeps(args.list or None))
            return 0
        options = options_from_args(args)
        return run_sweep(options).exit_code
    except MedsweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        # The first Ctrl-C during the trials ends in run_sweep, with summary.csv written.
        print(f"\n{interrupted_message(options, exc)}", file=sys.stderr)
        return INTERRUPTED_EXIT


if __name__ == "__main__":
    sys.exit(main())
