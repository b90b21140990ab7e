"""``python -m sweeps.export_wandb NAME``: the sweep as a W&B sweep configuration (YAML).

For users who prefer W&B agents to Ray Tune: ``wandb sweep <file>`` creates the sweep, and each
``wandb agent`` run executes one grid point as a one-trial medsweep run (``--set-file`` takes
the agent's parameters) logged with ``--wandb``. Grid axes become ``values``, fixed settings
``value``, ASHA becomes Hyperband early termination with the same ``min_iter`` and ``eta``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from sweeps.registry import SWEEPS, get_sweep
from sweeps.space import ResolvedSweep, SearchSpaceError, resolve

GOALS = {"max": "maximize", "min": "minimize"}


def wandb_sweep_config(resolved: ResolvedSweep) -> dict:
    spec = resolved.spec
    parameters = {key: {"values": list(values)} for key, values in resolved.grid.items()}
    parameters |= {key: {"value": value} for key, value in resolved.fixed.items()}
    profile = ["--profile", resolved.profile] + (["--smoke"] if resolved.smoke else [])
    return {
        "name": spec.name,
        "description": spec.study,
        "method": "grid",
        "metric": {"name": spec.metric, "goal": GOALS[spec.mode]},
        "parameters": parameters,
        "early_terminate": {"type": "hyperband", "min_iter": int(resolved.asha.grace_period),
                            "eta": int(resolved.asha.reduction_factor)},
        "command": ["${env}", "${interpreter}", "-m", "sweeps.run", spec.name, *profile,
                    "--set-file", "${args_json_file}", "--wandb"],
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sweeps.export_wandb",
                                     description="Write a sweep's search space as a W&B sweep YAML.")
    parser.add_argument("name", help=f"the sweep ({', '.join(sorted(SWEEPS))})")
    parser.add_argument("--profile", choices=("full", "cpu"), default="full", help="which profile's values")
    parser.add_argument("--smoke", action="store_true", help="the smoke-sized values")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, as for sweeps.run")
    parser.add_argument("--out", help="write here instead of standard output")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        resolved = resolve(get_sweep(args.name), profile=args.profile, smoke=args.smoke,
                           overrides=tuple(args.overrides))
    except (KeyError, SearchSpaceError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    text = yaml.safe_dump(wandb_sweep_config(resolved), sort_keys=False)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}; create the sweep with: wandb sweep {args.out}")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
