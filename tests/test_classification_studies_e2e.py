"""End to end: the smoke sweeps of studies 2 and 5 on a small copy of the real Taleqani images
and of study 3 on generated ChestMNIST data, through Ray Tune, and study 5's report with its
tables per model and data-loading option."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import ray

from analysis.document import empty_cells
from analysis.study_report import ReportOptions, write_report
from sweeps.sweep import SweepOptions, run_sweep
from tests.conftest import copy_real_taleqani
from tests.synthetic_data import write_chestmnist

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def taleqani_dir(tmp_path_factory):
    """10 real images per class (skipped without the real copy)."""
    return copy_real_taleqani(tmp_path_factory.mktemp("taleqani"), per_class=10)


def smoke(name: str, data_dir, storage, overrides: tuple[str, ...] = ()) -> object:
    return run_sweep(SweepOptions(name=name, smoke=True, storage=str(storage), data_dir=str(data_dir),
                                  overrides=overrides), echo=lambda _: None)


def trained(rows) -> object:
    return rows[rows["stop_reason"].isin({"completed", "stopped_by_asha", "early_stopped"})]


def test_all_transfer_smoke_trains_the_cnn_and_both_vgg16_variants(ray_session, taleqani_dir, tmp_path):
    outcome = smoke("all_transfer", taleqani_dir, tmp_path)
    rows = outcome.summary
    # The profile's grid: all 18 points on a GPU (full), the cpu profile's learning rate alone here.
    grid = json.loads((outcome.experiment_dir / "sweep.json").read_text())["grid"]
    assert outcome.exit_code == 0 and len(rows) == math.prod(len(values) for values in grid.values())
    assert set(grid["model"]) == {"custom_cnn", "vgg16_frozen", "vgg16_finetune"}
    assert set(trained(rows)["model"]) == {"custom_cnn", "vgg16_frozen", "vgg16_finetune"}
    assert np.isfinite(trained(rows)["best_val_macro_f1"]).all()
    session = Path(ray._private.worker._global_node.get_session_dir_path())
    working_dirs = list(session.glob(f"artifacts/*/{outcome.location.name}/working_dirs/*"))
    assert len(working_dirs) == len(rows), "the trials' working directories are where staging would be left"
    assert not [p for d in working_dirs for p in d.glob(".checkpoint-staging-*")], "checkpoint staging left behind"


def test_chestmnist_smoke_trains_three_one_channel_models_on_one_logit(ray_session, tmp_path):
    data_dir = write_chestmnist(tmp_path / "data").parent
    outcome = smoke("chestmnist_binary", data_dir, tmp_path / "runs")
    rows = outcome.summary
    assert outcome.exit_code == 0 and len(rows) == 12
    assert set(trained(rows)["model"]) == {"densenet121_medmnist", "efficientnet_b0_medmnist",
                                           "mobilenetv3_large_medmnist"}
    assert trained(rows)["best_val_auc"].between(0, 1).all()
    result = json.loads((outcome.experiment_dir / trained(rows)["trial_id"].iloc[0] / "result.json")
                        .read_text().splitlines()[-1])
    assert {"val_sensitivity", "val_specificity", "val_auc", "train_accuracy"} <= set(result)


@pytest.fixture(scope="module")
def inception_smoke(ray_session, taleqani_dir, tmp_path_factory):
    # One epoch: a NASNetLarge checkpoint with its Adam state is about 1 GB, and Tune keeps a
    # trial's best and latest; ASHA itself is exercised by the other smoke sweeps.
    return smoke("all_inception_nasnet", taleqani_dir, tmp_path_factory.mktemp("runs"), overrides=("max_epochs=1",))


def test_all_inception_nasnet_smoke_runs_both_models_on_both_loading_options(inception_smoke):
    rows = inception_smoke.summary
    assert inception_smoke.exit_code == 0 and len(rows) == 8
    assert set(zip(rows["model"], rows["loading_option"])) == {
        (m, o) for m in ("inception_resnet_v2", "nasnetalarge") for o in (1, 2)}
    audit = json.loads((inception_smoke.experiment_dir / "data_audit.json").read_text())
    assert audit["variant_axis"] == "loading_option" and set(audit["variants"]) == {"1", "2"}
    for variant in audit["variants"].values():
        assert variant["leakage"]["exact_groups"] == 0 and variant["leakage"]["near_pairs"] == 0


def test_the_report_has_study_5s_table_for_each_model_and_loading_option(inception_smoke, taleqani_dir):
    report = write_report(ReportOptions(str(inception_smoke.experiment_dir), seeds=0, data_dir=str(taleqani_dir)),
                          echo=lambda _: None)
    tables = {t.caption: t for t in report.document.tables if t.source == "seed 004 tables"}
    assert set(tables) == {f"{model}, data-loading option {option}: classification report and scores per split"
                           for model in ("InceptionResNetV2", "NASNetLarge") for option in (1, 2)}
    for table in tables.values():
        assert len(table.frame) == 2 and not empty_cells(table)
        assert {"Precision", "Recall", "F1-Score", "Train accuracy (%)", "Train loss", "Validation accuracy (%)",
                "Validation loss", "Test accuracy (%)", "Test loss"} <= set(table.frame.columns)
    comparison = [t for t in report.document.tables if t.caption == "Model comparison on the test split"]
    assert comparison and {"Parameters", "Latency (ms/image)"} <= set(comparison[0].frame.columns)
