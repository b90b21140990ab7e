"""``python -m sweeps.run``: run a registered sweep on Ray Tune with ASHA.

The argument parser is kept apart from ``run_sweep``, a plain function tests call directly.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sweeps.registry import SWEEPS, Resources, get_sweep
from sweeps.space import PROFILES, ResolvedSweep, SearchSpaceError, from_saved, grid_size_of, resolve
from sweeps.summary import exit_code, format_table, trial_rows
from trainables.config import ConfigError
from trainables.datasets import get_dataset
from trainables.datasets.download import DataNotFoundError
from trainables.datasets.voc import MissingSplitListError
from trainables.models import PretrainedWeightsError, build_model

SWEEP_FILE = "sweep.json"
USER_ERRORS = (KeyError, SearchSpaceError, ConfigError, DataNotFoundError, MissingSplitListError,
               PretrainedWeightsError, FileNotFoundError)


@dataclass(frozen=True)
class SweepOptions:
    """What the command line can ask for; the defaults are the CLI's defaults."""

    name: str
    overrides: tuple[str, ...] = ()
    profile: str = "auto"
    smoke: bool = False
    num_samples: int = 1
    storage: str = "runs"
    experiment_name: str | None = None
    resume: bool = False
    address: str | None = None
    gpus_per_trial: float | None = None
    cpus_per_trial: float | None = None
    seed: int | None = None
    data_dir: str | None = None
    check_data: bool = False


@dataclass
class SweepOutcome:
    exit_code: int
    experiment_dir: Path | None = None
    summary: object = None
    audit: object = None
    messages: list[str] = field(default_factory=list)


def list_sweeps() -> str:
    lines = [f"{'sweep':<18} {'trainable':<15} {'grid':>5}  metric", "-" * 60]
    for spec in SWEEPS.values():
        lines.append(f"{spec.name:<18} {spec.trainable:<15} {grid_size_of(spec):>5}  "
                     f"{spec.metric} ({spec.mode})  — {spec.study}")
    return "\n".join(lines)


def resolve_profile(profile: str) -> tuple[str, str]:
    """The concrete profile for ``auto``, and a sentence saying why."""
    if profile != "auto":
        return profile, f"profile {profile} (asked for)"
    import torch
    if torch.cuda.is_available():
        return "full", f"profile full: {torch.cuda.device_count()} GPU(s) visible, the document's settings"
    return "cpu", ("profile cpu: no GPU visible, so a reduced sweep sized for a 2-core machine "
                   "(small patches, from scratch, short epochs; see README 'Profiles')")


def run_sweep(options: SweepOptions, *, echo: Callable[[str], None] = print) -> SweepOutcome:
    """Resolve, audit the data, run the sweep through Ray Tune, and write ``summary.csv``."""
    spec = get_sweep(options.name)
    storage = Path(options.storage)
    if options.resume:
        experiment_dir = find_experiment(storage, options.name, options.experiment_name)
        resolved = from_saved(spec, json.loads((experiment_dir / SWEEP_FILE).read_text()))
        echo(f"Resuming {experiment_dir}")
    else:
        profile, why = resolve_profile(options.profile)
        overrides = options.overrides + ((f"seed={options.seed}",) if options.seed is not None else ())
        resolved = resolve(spec, profile=profile, smoke=options.smoke, overrides=overrides)
        resolved = with_resources(resolved, options.cpus_per_trial, options.gpus_per_trial)
        echo(f"{spec.name}: {why}{' + smoke' if options.smoke else ''}; "
             f"{resolved.grid_size} grid point(s) × {options.num_samples} sample(s)")
        experiment_dir = None if options.check_data else new_experiment_dir(
            storage, options.experiment_name or spec.name)

    data, audit = get_dataset(resolved.data.dataset)(
        data_dir=options.data_dir, image_size=resolved.data.image_size, padding=resolved.data.padding)
    echo(audit.format())
    if options.check_data:
        return SweepOutcome(exit_code=0, audit=audit)
    if not options.resume:
        preflight_pretrained(resolved)
    audit.save(experiment_dir)
    if resolved.data.images_per_split:
        data = data.subset_sources(resolved.data.images_per_split, seed=int(resolved.fixed.get("seed", 0)))
    echo("Trials get: " + "; ".join(f"{name} {len(split)} samples {list(data.class_counts(name))}"
                                    for name, split in data.splits.items() if name != "test"))
    (experiment_dir / SWEEP_FILE).write_text(json.dumps(resolved.to_dict(), indent=2))

    started_ray = ensure_ray(options.address)
    try:
        from sweeps.tuner import build_tuner, restore_tuner
        tuner = (restore_tuner(resolved, data, experiment_dir) if options.resume
                 else build_tuner(resolved, data, experiment_dir, num_samples=options.num_samples))
        started = time.perf_counter()
        result_grid = tuner.fit()
        elapsed = time.perf_counter() - started
    finally:
        if started_ray:
            import ray
            ray.shutdown()
    rows = trial_rows(result_grid, axes=list(resolved.grid), metric=spec.metric, mode=spec.mode)
    rows.drop(columns=["path"]).to_csv(experiment_dir / "summary.csv", index=False)
    echo(format_table(rows, spec.metric))
    counts = rows["stop_reason"].value_counts().to_dict()
    echo(f"{len(rows)} trials in {elapsed:.0f} s: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    echo(f"Experiment directory: {experiment_dir.resolve()}")
    return SweepOutcome(exit_code=exit_code(rows), experiment_dir=experiment_dir, summary=rows, audit=audit)


def with_resources(resolved: ResolvedSweep, cpus: float | None, gpus: float | None) -> ResolvedSweep:
    if cpus is None and gpus is None:
        return resolved
    resources = Resources(cpus=resolved.resources.cpus if cpus is None else cpus,
                          gpus=resolved.resources.gpus if gpus is None else gpus)
    return dataclasses.replace(resolved, resources=resources)


def preflight_pretrained(resolved: ResolvedSweep) -> None:
    """Fetch (or find) pretrained weights once in the driver, so a missing download is one
    clear error now rather than every trial failing on a worker later."""
    wanted = {(c["model"], c.get("pretrained_path")) for c in resolved.configs() if c.get("pretrained")}
    for model, path in sorted(wanted, key=str):
        build_model(model, num_classes=2, pretrained=True, pretrained_path=path)


def new_experiment_dir(storage: Path, base: str) -> Path:
    """``<storage>/<base>_<timestamp>``; never an existing directory."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = storage / f"{base}_{stamp}"
    suffix = 1
    while candidate.exists():
        suffix += 1
        candidate = storage / f"{base}_{stamp}-{suffix}"
    candidate.mkdir(parents=True)
    return candidate


def find_experiment(storage: Path, sweep: str, name: str | None) -> Path:
    """The experiment to resume: ``--name`` if given, else the newest of this sweep."""
    if name:
        path = storage / name
        if not (path / SWEEP_FILE).is_file():
            raise FileNotFoundError(f"--resume --name {name}: {path} is not a medsweep experiment "
                                    f"(no {SWEEP_FILE}); experiments are under --storage {storage}")
        return path
    candidates = sorted((p for p in storage.glob(f"{sweep}_*") if (p / SWEEP_FILE).is_file()),
                        key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise FileNotFoundError(f"--resume: no experiment of {sweep} under {storage}; "
                                f"pass --storage or --name")
    return candidates[-1]


def ensure_ray(address: str | None) -> bool:
    """Connect to ``address`` or start a local Ray instance; True when this call started it."""
    import ray
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address)
    else:
        ray.init(include_dashboard=False)
    return True


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sweeps.run",
        description="Run a registered hyperparameter sweep on Ray Tune with ASHA early stopping. "
                    "Each trial reports per-epoch metrics; the end prints one table of trials and "
                    "writes summary.csv into the experiment directory.",
        epilog="Examples:\n  python -m sweeps.run --list\n"
               "  python -m sweeps.run bccd_imbalance --check-data\n"
               "  python -m sweeps.run bccd_imbalance --smoke\n"
               "  python -m sweeps.run bccd_imbalance --set lr=[1e-3,3e-4] --set weighted_loss=true\n"
               "  python -m sweeps.run bccd_imbalance --resume",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", help="the sweep to run (see --list)")
    parser.add_argument("--list", action="store_true", help="list every sweep with its trainable, grid size and metric")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting; a list value KEY=[a,b] replaces that grid axis "
                             "(repeatable; unknown keys are an error listing the valid ones)")
    parser.add_argument("--profile", choices=PROFILES, default="auto",
                        help="full: the document's settings; cpu: reduced for a 2-core machine without "
                             "GPU; auto (default): full when a GPU is visible, else cpu")
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny run for tests: a few images per split, small inputs, two epochs")
    parser.add_argument("--num-samples", type=int, default=1, help="repeat the grid this many times (default 1)")
    parser.add_argument("--storage", default="runs", help="where experiments are written (default ./runs)")
    parser.add_argument("--name", dest="experiment_name",
                        help="experiment name (default: the sweep name with a timestamp)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the newest interrupted experiment of this sweep, or the one named by --name")
    parser.add_argument("--address", help="connect to an existing Ray cluster (for example 'auto')")
    parser.add_argument("--gpus-per-trial", type=float, help="GPUs per trial; fractions pack trials onto a GPU")
    parser.add_argument("--cpus-per-trial", type=float, help="CPUs per trial")
    parser.add_argument("--seed", type=int, help="the trials' random seed (default: the search space's)")
    parser.add_argument("--data-dir", help="directory holding the dataset folder "
                                           "(default: $MEDSWEEP_DATA_DIR, then the user cache, then download)")
    parser.add_argument("--check-data", action="store_true", help="print the data audit and exit without training")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        print(list_sweeps())
        return 0
    if not args.name:
        parser.error(f"name a sweep (valid: {', '.join(sorted(SWEEPS))}) or use --list")
    options = SweepOptions(
        name=args.name, overrides=tuple(args.overrides), profile=args.profile, smoke=args.smoke,
        num_samples=args.num_samples, storage=args.storage, experiment_name=args.experiment_name,
        resume=args.resume, address=args.address, gpus_per_trial=args.gpus_per_trial,
        cpus_per_trial=args.cpus_per_trial, seed=args.seed, data_dir=args.data_dir,
        check_data=args.check_data)
    try:
        return run_sweep(options).exit_code
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
