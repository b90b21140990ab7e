"""The sweep command's arguments: ``python -m sweeps.run --help`` is this parser; ``sweeps.run``
turns what it parses into ``SweepOptions``, checked before anything runs."""

from __future__ import annotations

import argparse

from sweeps.choices import PROFILES, SEARCH_ALGORITHMS

# --gpus-per-trial's default: packing chosen by measuring a trial (sweeps/packing.py).
AUTO = "auto"
# The options (by their parsed name) that set what an experiment fixes when it starts: --resume
# keeps the experiment's own and refuses these (SweepOptions), a requeued Slurm job drops them
# (sweeps/slurm.py).
FIXED_AT_START = ("overrides", "set_file", "search", "num_samples", "seed", "smoke", "profile", "cpus_per_trial",
                  "gpus_per_trial", "optuna_storage")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sweeps.run",
        description="Run a study's hyperparameter sweep (a built-in study, or a study file) on Ray Tune with "
                    "ASHA early stopping. Each trial reports per-epoch metrics; the end prints one table of trials and "
                    "writes summary.csv into the experiment directory.",
        epilog="Examples:\n  python -m sweeps.run --list\n"
               "  python -m sweeps.run --list my_studies/\n"
               "  python -m sweeps.run my_studies/my_study.yaml --check-data\n"
               "  python -m sweeps.run bccd_imbalance --check-data\n"
               "  python -m sweeps.run bccd_imbalance --smoke\n"
               "  python -m sweeps.run bccd_imbalance --plan\n"
               "  python -m sweeps.run bccd_imbalance --set lr=[1e-3,3e-4] --set weighted_loss=true\n"
               "  python -m sweeps.run bccd_imbalance --search optuna --num-samples 20\n"
               "  python -m sweeps.run bccd_imbalance --resume\n"
               "  python -m sweeps.run bccd_imbalance --address auto --storage s3://bucket/runs",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", help="the sweep to run: a built-in study's name (see --list) or the path "
                                                "of a study file (docs/study-files.md)")
    parser.add_argument("--list", nargs="?", const="", default=None, metavar="DIR",
                        help="list every built-in study (or, given DIR, every study file in that folder) with its "
                             "trainable, grid size and metric")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting; a list value KEY=[a,b] replaces that grid axis "
                             "(repeatable; unknown keys are an error listing the valid ones)")
    parser.add_argument("--set-file", metavar="FILE",
                        help="a JSON or YAML mapping of KEY: VALUE overrides, applied before --set "
                             "(W&B agents pass their parameters this way)")
    parser.add_argument("--profile", choices=PROFILES, default="auto",
                        help="full: the document's settings; cpu: reduced for a 2-core machine without "
                             "GPU; auto (default): full when a GPU is visible, else cpu")
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny run for tests: a few images per split, small inputs, two epochs")
    parser.add_argument("--search", choices=SEARCH_ALGORITHMS, default="grid",
                        help="grid (default): every combination; optuna: seeded TPE over the same values")
    parser.add_argument("--num-samples", type=int,
                        help="grid: repeat the grid this many times (default 1); optuna: number of trials "
                             "(default the grid size)")
    parser.add_argument("--optuna-storage", metavar="URL",
                        help="keep the Optuna study in this database (e.g. sqlite:///optuna.db) for optuna-dashboard")
    parser.add_argument("--storage", default="runs",
                        help="where experiments are written: a local or NFS directory, or s3://… / gs://… "
                             "(default ./runs)")
    parser.add_argument("--storage-shared", action="store_true",
                        help="declare a local --storage path shared by every node (checked automatically for NFS)")
    parser.add_argument("--name", dest="experiment_name",
                        help="experiment name (default: the sweep name with a timestamp)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the newest interrupted experiment of this sweep, or the one named by --name. "
                             "Tune restores its state from a pickle in the experiment directory, so resume only "
                             "experiments you trust (yours, or from storage only you can write)")
    parser.add_argument("--address", help="connect to an existing Ray cluster (for example 'auto')")
    parser.add_argument("--gpus-per-trial", type=gpus_argument, default=AUTO,
                        help="GPUs per trial: a number (fractions pack trials onto a GPU, 0 for none) or auto "
                             "(default): measure one trial's peak GPU memory on the grid's heaviest configs and "
                             "pack as many trials per GPU as fit with 20%% headroom and the node's CPUs can feed")
    parser.add_argument("--cpus-per-trial", type=float, help="CPUs per trial")
    parser.add_argument("--max-failures", type=int, default=3,
                        help="retries of a trial whose process or node died, each from its latest "
                             "checkpoint (default 3, suited to spot instances)")
    parser.add_argument("--seed", type=int, help="the trials' random seed (default: the search space's)")
    parser.add_argument("--wandb", action="store_true",
                        help="log every trial to Weights & Biases (offline without WANDB_API_KEY or wandb login)")
    parser.add_argument("--data-dir", help="directory holding the dataset folder "
                                           "(default: $MEDSWEEP_DATA_DIR, then the user cache, then download)")
    parser.add_argument("--check-data", action="store_true", help="print the data audit and exit without training")
    parser.add_argument("--plan", action="store_true",
                        help="print what the sweep will cost (trials, trial-epochs for the grid and under ASHA, "
                             "trials at once, wall time from a short calibration) and exit without training "
                             "or creating an experiment")
    parser.add_argument("--plan-seconds-per-epoch", type=float, metavar="S",
                        help="the forecast's seconds per trial-epoch, instead of calibrating on this machine")
    parser.add_argument("--verbose", action="store_true",
                        help="show Ray Tune's periodic status table instead of the one-line progress")
    parser.add_argument("--dashboard", action="store_true",
                        help="start Ray's dashboard on 127.0.0.1 for a local run and print its URL "
                             "(needs pip install 'ray[default]'; a cluster has its own)")
    parser.add_argument("--strict-data", action="store_true",
                        help="stop (exit 2) when the audit drops any item or the data differs from its pinned "
                             "checksums, instead of training on what is left; for pipelines that must not train "
                             "on silently shrunken data")
    parser.add_argument("--allow-large-images", action="store_true",
                        help="decode the data even when its estimated size (images x image_size² x 3 bytes) "
                             "exceeds half of this machine's memory, which is otherwise refused before decoding")
    parser.add_argument("--allow-data-change", action="store_true",
                        help="with --resume: go on although the data differs from the experiment's record (its "
                             "fingerprint in sweep.json, its split lists in splits.json), which is otherwise "
                             "refused naming what changed; the changes are recorded and shown in the report")
    return parser


def gpus_argument(text: str) -> float | str:
    """``--gpus-per-trial``: ``auto`` or a number (its range is checked with the other options)."""
    if text == AUTO:
        return AUTO
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of GPUs or 'auto', got {text!r}") from None
