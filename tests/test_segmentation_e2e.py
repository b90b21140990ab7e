"""End to end on a small copy of the real Taleqani images: the all_unet smoke sweep and its report."""

from __future__ import annotations

import pytest

from analysis.document import empty_cells
from analysis.study_report import ReportOptions, write_report
from sweeps.sweep import SweepOptions, run_sweep
from tests.conftest import copy_real_taleqani

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def unet_smoke(ray_session, tmp_path_factory):
    # 12 real pairs per class; most real Segmented/Pro images are near-empty and dropped.
    data_dir = copy_real_taleqani(tmp_path_factory.mktemp("taleqani"), per_class=12)
    outcome = run_sweep(SweepOptions(name="all_unet", smoke=True, storage=str(tmp_path_factory.mktemp("runs")),
                                     data_dir=str(data_dir)))
    return outcome, data_dir


def test_the_smoke_sweep_trains_all_three_models_and_stops_the_lr_0_1_trials(unet_smoke):
    outcome, _ = unet_smoke
    rows = outcome.summary
    assert outcome.exit_code == 0 and len(rows) == 36
    assert set(rows["model"]) == {"unet", "unet_fpn", "unet_fpn_gelu"}
    fast = rows[rows["lr"] == 0.1]
    assert set(fast["stop_reason"]) <= {"diverged", "stopped_by_asha"}, fast[["trial_id", "model", "stop_reason"]]


def test_the_report_has_the_documents_table_per_model_with_pooled_and_per_image_scores(unet_smoke):
    outcome, data_dir = unet_smoke
    report = write_report(ReportOptions(str(outcome.experiment_dir), seeds=1, data_dir=str(data_dir)),
                          echo=lambda _: None)
    tables = {t.caption: t for t in report.document.tables if t.source == "seed 004 tables"}
    assert set(tables) == {f"{name}: segmentation report on test (%)"
                           for name in ("U-Net", "U-Net + FPN", "U-Net + FPN + GELU")}
    for table in tables.values():
        assert len(table.frame) == 12 and not empty_cells(table)
        assert {"IoU pooled", "IoU per image", "Dice pooled", "Dice per image"} <= set(table.frame.columns)
    assert (report.out_dir / "figures" / "mask_overlays.png").is_file()
    settings = [t for t in report.document.tables if t.caption == "Tuned per model"]
    assert settings and {"Threshold", "Min size"} <= set(settings[0].frame.columns)
