"""Detection and instance-segmentation data: images of different sizes, each with its boxes,
class labels and (when the annotations are polygons) one mask per instance.

Three datasets are read here:

* ``coco``: a researcher's own data as COCO instances JSON (boxes, polygons, RLE masks), one
  file that medsweep splits or one file per split, classes from its categories (``coco_format``);
* the private lymphoblast smears of study 4 (seed 003: RSUP Dr. Sardjito Yogyakarta), polygons
  drawn in VGG Image Annotator 2.x and saved as VIA JSON, or the same polygons as COCO JSON, read
  as a preset of ``coco``'s planning and reading with fixed classes;
* BCCD's Pascal VOC boxes (box-only, no masks), the study's runnable twin.

Coordinates. Polygon vertices (VIA ``all_points_x/y``, COCO ``segmentation``) are pixel
positions: a vertex at (x, y) covers pixel column x, row y, and an instance's mask is every
pixel its polygon touches (``cv2.fillPoly``). Rectangles (VIA ``rect``, a COCO ``bbox`` given
without a segmentation, VOC boxes) are pixel edges: ``x1, y1, x2, y2`` cover columns x1..x2-1.
Every box handed out is in pixel edges, so for data with masks each box is exactly the extent of
its mask (columns ``min..max+1`` of the mask's pixels), flips included.

Scaling. ``image_size`` is the image's longer side after resizing, the aspect kept (the document
scaled 4100x3075 by 0.2 to 820x615). Polygons are drawn at the scaled size from scaled vertices,
never by resizing a full-size mask (only COCO RLE masks, which have no vertices, are resized).

Bad annotations never stop a run: each is left out and listed in the audit with its reason.
Regions whose shape is malformed, degenerate (fewer than 3 distinct points, zero area, a
rectangle of zero width or height), inverted (a negative width or height, a VOC box with
xmin > xmax or ymin > ymax) or of an unknown class are dropped; so is a region lying
entirely outside its image. A region that crosses the image's edge is clipped to the image and
kept (the audit's notes count them). Images that are missing or cannot be decoded are dropped
with all their regions. An annotation file that is not JSON, or not VIA or COCO in shape, is an
error naming the file and the key, since nothing in it can be trusted.

Finding the lymphoblast annotation file. ``annotations.json`` or ``via_region_data.json`` is taken first;
without them, the folder's one JSON file that is VIA or COCO in shape (other JSON files are
not candidates); several such files are an error listing them. The ``annotations`` setting
names the file instead (a path relative to the data folder).

The package, by concern: ``types`` (the data handed to trials), ``geometry``, ``preprocessing``,
``regions`` (what VIA and COCO files share), ``via``, ``coco``, ``annotation_files`` (finding and
reading the annotation file), ``reading`` (images and targets), ``coco_format`` (the generic
format and the planning it shares), ``lymphoblast``, ``bccd_boxes`` and ``cache``. This module
re-exports the names the rest of medsweep uses.
"""

from trainables.datasets.detection.bccd_boxes import prepare_bccd_detection, read_bccd_detection
from trainables.datasets.detection.cache import load_detection_splits, save_detection_splits
from trainables.datasets.detection.coco_format import CocoOptions, prepare_coco, survey_coco
from trainables.datasets.detection.geometry import FLIP_MODES, flip_sample, mask_box, polygon_mask
from trainables.datasets.detection.lymphoblast import prepare_lymphoblast, read_lymphoblast
from trainables.datasets.detection.preprocessing import preprocess
from trainables.datasets.detection.types import (
                                                 LISTING,
                                                 AnnotationFileChoiceError,
                                                 DetectionData,
                                                 DetectionSplit,
                                                 MalformedAnnotationFileError,
)

__all__ = ["FLIP_MODES", "LISTING", "AnnotationFileChoiceError", "CocoOptions", "DetectionData", "DetectionSplit",
           "MalformedAnnotationFileError", "flip_sample", "load_detection_splits", "mask_box", "polygon_mask",
           "prepare_bccd_detection", "prepare_coco", "prepare_lymphoblast", "preprocess", "read_bccd_detection",
           "read_lymphoblast", "save_detection_splits", "survey_coco"]
