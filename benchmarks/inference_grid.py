"""Benchmark: one point of the inference-time grid (detection confidence × NMS IoU replayed on
cached candidates) against retraining and evaluating a detector for that point, as a training
grid over those two settings would have to.

    MEDSWEEP_DATA_DIR=../shared/data python benchmarks/inference_grid.py [--image-size 320] [--steps 4]

The retrain side is the bccd_detection cpu profile's trial (ResNet-50 Faster R-CNN from
scratch, ``--epochs`` × ``--steps-per-epoch`` steps, then validation): the time of a few
measured steps is scaled to the trial's step count and the validation pass is timed in full.
The grid side is one candidate pass over the same validation images plus the whole grid on
the CPU, with the candidates' scores redrawn uniformly so that every setting keeps boxes (the
worst case for the grid). Prints seconds and the ratio per grid point; figures, not assertions (shared machines).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from trainables.datasets.detection import prepare_bccd_detection
from trainables.detection import (
    DetectionConfig,
    build_optimizer,
    predict_detections,
    sampling_weights,
    to_device,
    training_batches,
    validation_metrics,
)
from trainables.detection_inference import DEFAULT_CONFIDENCES, DEFAULT_NMS_IOUS, candidate_cap, inference_grid
from trainables.models.rcnn import build_detector


def training_step_seconds(model, optimizer, batches, steps: int) -> float:
    """Median seconds of one optimiser step (after one warm-up step)."""
    model.train()
    timings = []
    for step, (images, targets) in zip(range(steps + 1), batches):
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        sum(model(images, targets).values()).backward()
        optimizer.step()
        if step:
            timings.append(time.perf_counter() - started)
    return float(np.median(timings))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="directory holding BCCD_Dataset (default: $MEDSWEEP_DATA_DIR)")
    parser.add_argument("--image-size", type=int, default=320, help="longer image side (cpu profile: 320)")
    parser.add_argument("--val-images", type=int, default=20, help="validation images scored per grid point")
    parser.add_argument("--steps", type=int, default=4, help="training steps to time (then scaled)")
    parser.add_argument("--steps-per-epoch", type=int, default=8, help="the trial's steps per epoch (cpu profile: 8)")
    parser.add_argument("--epochs", type=int, default=6, help="the trial's epochs (cpu profile: 6)")
    args = parser.parse_args()
    torch.manual_seed(0)

    data, _ = prepare_bccd_detection(data_dir=args.data_dir, image_size=args.image_size)
    train, val = data.splits["train"], data.splits["val"].take(np.arange(args.val_images))
    config = DetectionConfig(backbone="resnet50", pretrained=False, steps_per_epoch=args.steps_per_epoch,
                             validation_steps=args.val_images, max_epochs=args.epochs)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_detector(config, num_classes=data.num_classes, masks=False, image_side=args.image_size).to(device)
    optimizer = build_optimizer(config, model)
    weights = sampling_weights(train.labels, data.num_classes, balance=True)
    timed = dataclasses.replace(config, steps_per_epoch=args.steps + 1)
    batches = (to_device(images, targets, device)
               for images, targets in training_batches(train, timed, weights, np.random.default_rng(0)))

    step = training_step_seconds(model, optimizer, batches, args.steps)
    started = time.perf_counter()
    validation_metrics(model.eval(), val, config, data.class_names, device)
    validation = time.perf_counter() - started
    retrain = step * args.steps_per_epoch * args.epochs + validation * args.epochs

    heads = model.roi_heads
    heads.score_thresh, heads.nms_thresh, heads.detections_per_img = 0.0, 1.0, candidate_cap(data.num_classes)
    started = time.perf_counter()
    candidates = predict_detections(model, val.images, batch_size=2, device=device)
    candidate_pass = time.perf_counter() - started
    # A briefly trained model scores nearly every candidate below the lowest threshold, which makes
    # the grid look cheaper than it is; uniform scores keep candidates at every threshold.
    candidates[:, 5] = np.random.default_rng(0).uniform(size=len(candidates))
    started = time.perf_counter()
    grid = inference_grid(val.boxes, val.labels, candidates, data.class_names)
    grid_seconds = time.perf_counter() - started
    points = len(grid)
    per_point = (candidate_pass + grid_seconds) / points

    print(f"device {device.type}; {args.val_images} validation images at {args.image_size} px; "
          f"{len(candidates):,} cached candidates")
    print(f"retrain + evaluate one grid point: {step:.2f} s/step × {args.steps_per_epoch * args.epochs} steps "
          f"+ {validation:.1f} s validation × {args.epochs} epochs = {retrain:.0f} s")
    print(f"inference grid: candidate pass {candidate_pass:.1f} s once + {grid_seconds:.2f} s for "
          f"{points} points ({len(DEFAULT_CONFIDENCES)} confidences × {len(DEFAULT_NMS_IOUS)} NMS IoUs) "
          f"= {per_point:.3f} s per point (grid alone {grid_seconds / points * 1000:.0f} ms per point)")
    print(f"ratio per grid point: {retrain / per_point:,.0f}× faster than retraining "
          f"(goal: at least 20×); grid alone {retrain / (grid_seconds / points):,.0f}×")


if __name__ == "__main__":
    main()
