"""``python -m sweeps.export_wandb NAME``: the sweep as a W&B sweep configuration (YAML).

For users who prefer W&B agents to Ray Tune: ``wandb sweep <file>`` creates the sweep, and each
``wandb agent`` run executes one point as a one-trial medsweep run (``--set-file`` takes the
agent's parameters) logged with ``--wandb``. With ``--method grid`` (the default) grid axes become
``values``; with ``random`` or ``bayes`` an axis's range becomes W&B's distribution
(``log_uniform_values``, ``uniform``, ``int_uniform``, categorical ``values``) and an axis without
one stays a categorical choice of its values. Fixed settings become ``value``, ASHA becomes
Hyperband early termination with the same ``min_iter`` and ``eta``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from sweeps.ranges import Range
from sweeps.registry import SWEEPS, get_sweep
from sweeps.space import ResolvedSweep, SearchSpaceError, resolve
from trainables.errors import MedsweepError, cli_exit_code

GOALS = {"max": "maximize", "min": "minimize"}
METHODS = ("grid", "random", "bayes")
# W&B's distribution for each medsweep range kind (W&B's int_uniform includes both ends, as ours).
WANDB_DISTRIBUTIONS = {"loguniform": "log_uniform_values", "uniform": "uniform", "int": "int_uniform"}


def wandb_parameter(drawn: Range) -> dict:
    """One range as a W&B sweep parameter. W&B has no log-scale integer distribution, and its
    quantised one returns floats that an integer setting rejects, so such a range is an error."""
    if drawn.kind == "choice":
        return {"values": list(drawn.bounds)}
    if drawn.log:
        raise SearchSpaceError(f"{drawn.source}: grid.{drawn.axis} is an int range with log: true, which W&B "
                               f"sweeps cannot express; export with --method grid (its values), or drop log")
    return {"distribution": WANDB_DISTRIBUTIONS[drawn.kind], "min": drawn.bounds[0], "max": drawn.bounds[1]}


def wandb_parameters(resolved: ResolvedSweep, method: str) -> dict:
    """Searched and fixed settings as W&B parameters: the grid's values for ``grid``, each axis's
    range (else its values) for a sampling method."""
    searched = {key: {"values": list(values)} for key, values in resolved.grid.items()}
    if method == "grid":
        resolved.require_grid_values()
    else:
        searched |= {key: wandb_parameter(drawn) for key, drawn in resolved.ranges.items()}
    return searched | {key: {"value": value} for key, value in resolved.fixed.items()}


def wandb_sweep_config(resolved: ResolvedSweep, method: str = "grid") -> dict:
    """The W&B sweep configuration of ``resolved`` searched by ``method`` (one of ``METHODS``)."""
    if method not in METHODS:
        raise SearchSpaceError(f"unknown W&B sweep method {method!r}; valid: {', '.join(METHODS)}")
    spec = resolved.spec
    profile = ["--profile", resolved.profile] + (["--smoke"] if resolved.smoke else [])
    return {
        "name": spec.name,
        "description": spec.study,
        "method": method,
        "metric": {"name": spec.metric, "goal": GOALS[spec.mode]},
        "parameters": wandb_parameters(resolved, method),
        "early_terminate": {"type": "hyperband", "min_iter": int(resolved.asha.grace_period),
                            "eta": int(resolved.asha.reduction_factor)},
        "command": ["${env}", "${interpreter}", "-m", "sweeps.run", spec.name, *profile,
                    "--set-file", "${args_json_file}", "--wandb"],
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sweeps.export_wandb",
                                     description="Write a sweep's search space as a W&B sweep YAML.")
    parser.add_argument("name", help=f"the sweep ({', '.join(sorted(SWEEPS))}), or a study file's path")
    parser.add_argument("--profile", choices=("full", "cpu"), default="full", help="which profile's values")
    parser.add_argument("--smoke", action="store_true", help="the smoke-sized values")
    parser.add_argument("--method", choices=METHODS, default="grid",
                        help="grid (default): each axis's values; random or bayes: each axis's range")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, as for sweeps.run")
    parser.add_argument("--out", help="write here instead of standard output")
    return parser


class OutputFileError(MedsweepError, OSError):
    """``--out`` names a file that cannot be written."""


def check_output_file(out: str) -> None:
    """``--out`` must name a file in an existing, writable folder, not a folder itself."""
    path = Path(out).expanduser()
    fix = "pass --out a file path in an existing folder you can write, or drop --out to print to standard output"
    if path.is_dir():
        raise OutputFileError(f"--out {out}: is a directory; {fix}")
    folder = path.parent
    if not folder.is_dir():
        raise OutputFileError(f"--out {out}: the folder {folder} does not exist; {fix}")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise OutputFileError(f"--out {out}: not writable by this user; {fix}")


def export(args: argparse.Namespace) -> None:
    """Write (or print) the W&B sweep configuration the arguments ask for."""
    if args.out:
        check_output_file(args.out)
    resolved = resolve(get_sweep(args.name), profile=args.profile, smoke=args.smoke, overrides=tuple(args.overrides))
    text = yaml.safe_dump(wandb_sweep_config(resolved, args.method), sort_keys=False)
    if not args.out:
        print(text, end="")
        return
    try:
        Path(args.out).expanduser().write_text(text)
    except OSError as exc:
        raise OutputFileError(f"--out {args.out}: cannot be written ({exc.strerror or exc}); pass --out a file "
                              f"path you can write") from exc
    print(f"wrote {args.out}; create the sweep with: wandb sweep {args.out}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli_exit_code(lambda: export(args))


if __name__ == "__main__":
    sys.exit(main())
