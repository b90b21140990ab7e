"""The detection trainable: Mask R-CNN (Faster R-CNN for box-only data) on a ResNet-FPN, as
study 4 trains it, configured by ``DetectionConfig`` and sharing the loop of ``trainables.engine``.

Images go to the model as float tensors in [0, 1]; torchvision's ``GeneralizedRCNNTransform``
normalises them with ImageNet statistics. Class indices are 0..C-1 in the data and in the
packed detections (image, x1, y1, x2, y2, score, label), 1..C inside the model (0: background).

The package, by concern: ``config`` (``DetectionConfig`` and its checks), ``batches`` (the
images an epoch draws, their targets and the loader), ``model`` (the weights a trial starts
from, the image side its detector keeps), ``optimizer``, ``prediction`` (eval-mode outputs,
packed detections, COCO APs), ``validation`` (an epoch's validation numbers and losses),
``trainable`` (``detection_trainable`` and its loop's loss bookkeeping) and
``checkpoint_inference`` (a trial's detector rebuilt from its checkpoint, and what the analysis
asks of it). This module re-exports the names the rest of medsweep uses.
"""

from trainables.detection.batches import sampling_weights, to_device, training_batches
from trainables.detection.checkpoint_inference import (
    checkpoint_candidates,
    checkpoint_coco_scores,
    checkpoint_detector,
    checkpoint_instance_candidates,
    checkpoint_masks,
    checkpoint_model,
)
from trainables.detection.config import DetectionConfig
from trainables.detection.model import fetch_detector_weights
from trainables.detection.optimizer import build_optimizer
from trainables.detection.prediction import predict_detections
from trainables.detection.trainable import detection_trainable, uniform_guess_loss
from trainables.detection.validation import validation_losses, validation_metrics

__all__ = ["DetectionConfig", "build_optimizer", "checkpoint_candidates", "checkpoint_coco_scores",
           "checkpoint_detector", "checkpoint_instance_candidates", "checkpoint_masks", "checkpoint_model",
           "detection_trainable", "fetch_detector_weights", "predict_detections", "sampling_weights", "to_device",
           "training_batches", "uniform_guess_loss", "validation_losses", "validation_metrics"]
