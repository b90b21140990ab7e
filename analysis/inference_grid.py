"""The inference-time grid of a detection trial, as a command of its own (the report runs the
same step for every detection candidate).

    python -m analysis.inference_grid runs/lymphoblast_maskrcnn_<timestamp> [--trial ID] [--data-dir DIR]

The trial's best checkpoint predicts the validation split once with no score threshold and no
NMS (every box scoring at least the grid's lowest confidence); every detection confidence × NMS
IoU pair is then replayed on those cached candidates on the CPU, without retraining. Prints the
grid (best first) and a warning when images reached the cap on cached candidates, writes it as
CSV and a heat map to
``<experiment>/inference_grid/``. Only the validation split is read: choosing settings on the
test split would leak it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis import figures
from analysis.results import ExperimentError, load_experiment
from analysis.winners import pick_winners
from sweeps.data import prepare_sweep_data
from trainables.detection import checkpoint_candidates
from trainables.detection_inference import best_inference, cap_warning, inference_grid
from trainables.errors import cli_exit_code

OUT_DIR = "inference_grid"


@dataclass(frozen=True)
class GridOutcome:
    trial_id: str
    grid: pd.DataFrame
    best: dict[str, float]
    csv: Path
    heatmap: Path


def run_inference_grid(experiment_dir: str, *, trial_id: str | None = None, data_dir: str | None = None,
                       echo: Callable[[str], None] = print) -> GridOutcome:
    """The inference-time grid of ``trial_id`` (default: the sweep's winner) on its validation
    split, saved next to the experiment."""
    experiment = load_experiment(experiment_dir)
    if experiment.spec.trainable != "detection":
        raise ExperimentError(f"{experiment.directory} is a {experiment.spec.trainable} sweep; the inference-time "
                              f"grid is for detection sweeps (lymphoblast_maskrcnn, bccd_detection)")
    trials = experiment.trials.set_index("trial_id")
    trial_id = trial_id or pick_winners(experiment, top_k=1).overall
    if trial_id not in trials.index:
        raise ExperimentError(f"--trial {trial_id}: no such trial with a checkpoint; trials: "
                              f"{', '.join(trials.index)}")
    checkpoint = trials.loc[trial_id, "best_checkpoint"]
    if not checkpoint:
        raise ExperimentError(f"trial {trial_id} kept no checkpoint ({trials.loc[trial_id, 'stop_reason']})")
    data = prepare_sweep_data(experiment.resolved, data_dir=data_dir)
    variant, _ = data.for_config(experiment.config(trial_id))
    val = variant.splits["val"]
    started = time.perf_counter()
    candidates = checkpoint_candidates(Path(checkpoint), val)
    predicted = time.perf_counter() - started
    started = time.perf_counter()
    grid = inference_grid(val.boxes, val.labels, candidates, variant.class_names)
    best = best_inference(grid)
    echo(f"Trial {trial_id}: {len(candidates):,} candidates on {len(val)} validation images in {predicted:.1f} s; "
         f"{len(grid)} settings scored in {time.perf_counter() - started:.1f} s")
    out = experiment.directory / OUT_DIR
    out.mkdir(exist_ok=True)
    csv = out / f"{trial_id}.csv"
    grid.to_csv(csv, index=False)
    heatmap = figures.inference_heatmap(grid, "map50", best, out / f"{trial_id}.png",
                                        f"trial {trial_id}: validation mAP@0.5")
    shown = ["min_confidence", "nms_iou", "map50", "precision", "recall", "f1", "accuracy", "count_mae"]
    echo(grid.sort_values("map50", ascending=False)[shown].head(10).to_string(index=False, float_format="%.4f"))
    warning = cap_warning(grid)
    if warning:
        echo(warning)
    echo(f"Best on validation: detection confidence {best['min_confidence']:g}, NMS IoU {best['nms_iou']:g}. "
         f"Written: {csv}, {heatmap}")
    return GridOutcome(trial_id=trial_id, grid=grid, best=best, csv=csv, heatmap=heatmap)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis.inference_grid", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", help="experiment directory of a detection sweep")
    parser.add_argument("--trial", help="trial id (default: the sweep's winner by its metric)")
    parser.add_argument("--data-dir", help="directory holding the dataset (default: $MEDSWEEP_DATA_DIR)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli_exit_code(lambda: run_inference_grid(args.experiment, trial_id=args.trial, data_dir=args.data_dir))


if __name__ == "__main__":
    sys.exit(main())
