"""End to end for study 4: the bccd_detection smoke sweep on the real BCCD boxes and its report
(val mAP per trial, the inference-time grid, counts), and the lymphoblast Mask R-CNN smoke
sweep on generated VIA data with both preprocessing variants."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from analysis.document import Paragraph, empty_cells
from analysis.study_report import ReportOptions, write_report
from sweeps.sweep import SweepOptions, run_sweep
from tests.synthetic_data import write_lymphoblast

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def bccd_detection(ray_session, shared_data_dir, tmp_path_factory):
    return run_sweep(SweepOptions(name="bccd_detection", smoke=True, storage=str(tmp_path_factory.mktemp("runs")),
                                  data_dir=str(shared_data_dir)), echo=lambda _: None)


def test_bccd_detection_smoke_trains_faster_rcnn_on_both_preprocessing_variants(bccd_detection):
    rows = bccd_detection.summary
    assert bccd_detection.exit_code == 0 and len(rows) == 4
    assert set(rows["preprocessing"]) == {"raw", "segmented"}
    trained = rows[rows["stop_reason"] != "diverged"]
    assert not trained.empty and trained["best_val_map50"].between(0, 1).all()
    meta = json.loads(next(bccd_detection.experiment_dir.glob("*/checkpoint_*/meta.json")).read_text())
    assert meta["task"] == "detection" and meta["has_masks"] is False


def test_the_report_shows_val_map_per_trial_and_the_inference_time_grid(bccd_detection, shared_data_dir):
    report = write_report(ReportOptions(str(bccd_detection.experiment_dir), seeds=0, data_dir=str(shared_data_dir)),
                          echo=lambda _: None)
    captions = {t.caption: t for t in report.document.tables}
    for variant in ("Raw images", "Segmented images"):
        table = captions[f"{variant}: val mAP@0.5 per detection minimum confidence"]
        assert not empty_cells(table)
        assert not table.frame["Other settings"].str.contains("detection_min_confidence").any()
    assert {"Performance on the validation split", "Performance on the test split",
            "Count error per class (test split)", "COCO AP on the test split"} <= set(captions)
    assert list(captions["COCO AP on the test split"].frame.columns[-1:]) == ["Box AP@[.50:.95]"]
    trials = captions["Every trial, also in results.csv"].frame
    assert len(trials) == 4 and trials["best_val_map50"].map(float).between(0, 1).all()
    assert list((report.out_dir / "figures").glob("inference_grid_*.png"))
    assert (report.out_dir / "figures" / "detections.png").is_file()
    counts = pd.read_csv(next(report.out_dir.glob("counts_*.csv")))
    assert {"image", "source", "actual_RBC", "automatic_RBC"} <= set(counts.columns)


def test_lymphoblast_smoke_selects_on_mask_ap_and_reports_it_on_the_test_split(ray_session, tmp_path):
    data_dir = write_lymphoblast(tmp_path / "lymphoblast", images=18, size=160)
    outcome = run_sweep(SweepOptions(name="lymphoblast_maskrcnn", smoke=True, storage=str(tmp_path / "runs"),
                                     data_dir=str(data_dir), overrides=("lr=[0.001]",)), echo=lambda _: None)
    rows = outcome.summary
    assert outcome.exit_code == 0 and set(rows["preprocessing"]) == {"raw", "segmented"}
    metas = [json.loads(p.read_text()) for p in outcome.experiment_dir.glob("*/checkpoint_*/meta.json")]
    assert metas and all(m["has_masks"] for m in metas)
    assert {"train_loss_mask", "val_map50", "val_mask_map50"} <= set(json.loads(
        next(outcome.experiment_dir.glob("*/result.json")).read_text().splitlines()[-1]))
    assert outcome.summary["best_val_mask_map50"].between(0, 1).all()

    report = write_report(ReportOptions(str(outcome.experiment_dir), seeds=0, data_dir=str(data_dir)),
                          echo=lambda _: None)
    captions = {t.caption: t for t in report.document.tables}
    test = captions["Performance on the test split"].frame
    assert "Mask AP@0.5" in test.columns and not test["Mask AP@0.5"].str.contains("n/a").any()
    assert "Raw images: val mask mAP@0.5 per detection minimum confidence" in captions
    paragraphs = " ".join(b.text for b in report.document.blocks if isinstance(b, Paragraph))
    assert "by validation mask AP@0.5 (val_mask_map50)" in paragraphs
    assert "chosen on the validation split by box mAP@0.5" in paragraphs


def test_the_inference_grid_command_scores_every_setting_on_validation_candidates(bccd_detection, shared_data_dir):
    from analysis.inference_grid import main, run_inference_grid
    from trainables.detection_inference import DEFAULT_CONFIDENCES, DEFAULT_NMS_IOUS

    outcome = run_inference_grid(str(bccd_detection.experiment_dir), data_dir=str(shared_data_dir),
                                 echo=lambda _: None)
    saved = pd.read_csv(outcome.csv)
    assert len(saved) == len(DEFAULT_CONFIDENCES) * len(DEFAULT_NMS_IOUS) and outcome.heatmap.is_file()
    best = saved.sort_values(["map50", "min_confidence", "nms_iou"], ascending=[False, False, True]).iloc[0]
    assert outcome.best == {"min_confidence": best["min_confidence"], "nms_iou": best["nms_iou"]}
    assert main([str(bccd_detection.experiment_dir), "--trial", "nope", "--data-dir", str(shared_data_dir)]) == 2
