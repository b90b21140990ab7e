"""Every experiment records what produced it (code, packages, machine, data) in sweep.json; the
report shows it, reads the data where the sweep did, and warns when it runs under another
environment."""

from __future__ import annotations

import json
import shutil
from importlib import metadata

import pytest
import torch

from sweeps.environment import (
    CORE_PACKAGES,
    environment_differences,
    mismatch_warning,
    package_versions,
    recorded_environment,
)

pytestmark = pytest.mark.e2e


def test_a_new_experiment_records_code_packages_machine_and_data(smoke_sweep, shared_data_dir):
    recorded = recorded_environment(smoke_sweep.experiment_dir)
    assert set(recorded) >= {"medsweep_commit", "medsweep_dirty", "packages", "python", "platform", "gpus", "data"}
    assert len(recorded["medsweep_commit"]) == 40 and isinstance(recorded["medsweep_dirty"], bool)
    for name in (*CORE_PACKAGES, "pandas", "opencv-python-headless", "matplotlib"):
        assert recorded["packages"][name] == metadata.version(name), name
    # The driver's GPUs as PyTorch names them: none without CUDA, else every device's model.
    visible = ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
               if torch.cuda.is_available() else [])
    assert recorded["gpus"] == visible
    data = recorded["data"]
    assert data["dataset"] == "bccd" and data["data_dir"] == str(shared_data_dir)
    (variant,) = data["variants"].values()
    assert variant["root"].startswith(str(shared_data_dir)) and len(variant["fingerprint"]) >= 16
    assert len(variant["split_manifest_sha256"]) == 64


def test_a_different_package_or_commit_is_named_in_the_warning():
    current = {"medsweep_commit": "b" * 40, "medsweep_dirty": False, "python": "3.11.7",
               "packages": {"torch": "2.14.1", "ray": "2.60.0"}}
    saved = {**current, "medsweep_commit": "a" * 40, "packages": {"torch": "2.13.0", "ray": "2.60.0"}}
    assert environment_differences(saved, current) == [f"medsweep_commit: {'a' * 40} then, {'b' * 40} now",
                                                       "torch: 2.13.0 then, 2.14.1 now"]
    assert environment_differences(current, current) == []
    old_torch = {"packages": {**package_versions(), "torch": "0.0.1"}}
    assert "torch: 0.0.1 then" in mismatch_warning(old_torch, doing="resuming")


def test_the_report_of_a_file_uri_reads_the_sweeps_data_dir_shows_the_record_and_warns_on_a_mismatch(
        smoke_sweep, shared_data_dir, tmp_path, monkeypatch):
    import analysis.study_report
    from analysis.study_report import ReportOptions, write_report

    experiment = tmp_path / smoke_sweep.experiment_dir.name
    shutil.copytree(smoke_sweep.experiment_dir, experiment)
    saved = json.loads((experiment / "sweep.json").read_text())
    saved["environment"]["packages"]["torch"] = "0.0.1"
    (experiment / "sweep.json").write_text(json.dumps(saved))
    monkeypatch.delenv("MEDSWEEP_DATA_DIR", raising=False)
    seen = {}

    def confirm_nothing(experiment, winners, settings, **keywords):
        seen["data_dir"] = settings.data_dir

    monkeypatch.setattr(analysis.study_report, "confirm_on_test", confirm_nothing)
    lines: list[str] = []
    outcome = write_report(ReportOptions(experiment_dir=experiment.as_uri(), seeds=0, top_k=1), echo=lines.append)
    assert seen["data_dir"] == str(shared_data_dir)
    assert any("torch: 0.0.1 then" in line for line in lines)
    text = outcome.markdown.read_text()
    assert "Recorded when the sweep ran" in text and saved["environment"]["medsweep_commit"] in text
    assert "This report ran under a different environment: torch: 0.0.1 then" in text
