"""Experiment locations on local paths and filesystem URIs, and finding experiments to resume."""

from __future__ import annotations

import os
import time

import pytest

from sweeps.run import find_experiment, new_experiment
from sweeps.storage import ExperimentLocation, is_uri, list_experiments


@pytest.mark.parametrize("as_uri", [False, True])
def test_location_writes_and_reads_on_paths_and_uris(tmp_path, as_uri):
    storage = f"file://{tmp_path}" if as_uri else str(tmp_path)
    location = ExperimentLocation(storage, "exp")
    assert not location.exists()
    location.write_text("sweep.json", "{}")
    assert location.exists("sweep.json") and location.read_text("sweep.json") == "{}"
    assert (tmp_path / "exp" / "sweep.json").read_text() == "{}"
    assert location.local_dir == (None if as_uri else tmp_path / "exp")
    assert location.storage_path == (storage if as_uri else str(tmp_path.resolve()))


def test_uri_detection():
    assert is_uri("s3://bucket/runs") and is_uri("gs://b/r") and not is_uri("/mnt/nfs/runs")


def test_resume_picks_the_newest_experiment_of_the_sweep(tmp_path):
    for name, age in (("bccd_imbalance_a", 30), ("bccd_imbalance_b", 10), ("other_c", 0)):
        ExperimentLocation(str(tmp_path), name).write_text("sweep.json", "{}")
        stamp = time.time() - age
        os.utime(tmp_path / name, (stamp, stamp))
    (tmp_path / "bccd_imbalance_nosweep").mkdir()
    assert [l.name for l in list_experiments(str(tmp_path), "bccd_imbalance_", "sweep.json")] == [
        "bccd_imbalance_a", "bccd_imbalance_b"]
    assert find_experiment(str(tmp_path), "bccd_imbalance", None).name == "bccd_imbalance_b"
    with pytest.raises(FileNotFoundError, match="no experiment of all_unet"):
        find_experiment(str(tmp_path), "all_unet", None)


def test_named_experiment_is_never_overwritten(tmp_path):
    ExperimentLocation(str(tmp_path), "mine").write_text("sweep.json", "{}")
    with pytest.raises(FileExistsError, match="--resume --name mine"):
        new_experiment(str(tmp_path), "bccd_imbalance", "mine")
    assert new_experiment(str(tmp_path), "bccd_imbalance", None).name.startswith("bccd_imbalance_")
