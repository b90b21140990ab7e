"""Experiment locations on local paths and filesystem URIs, and finding experiments to resume."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sweeps.storage import (
    TUNE_STATE_FILE,
    ExperimentLocation,
    StorageError,
    check_writable_storage,
    find_experiment,
    is_uri,
    list_experiments,
    new_experiment,
)


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
        location = ExperimentLocation(str(tmp_path), name)
        location.write_text("sweep.json", "{}")
        location.write_text(TUNE_STATE_FILE, "")
        stamp = time.time() - age
        os.utime(tmp_path / name, (stamp, stamp))
    (tmp_path / "bccd_imbalance_nosweep").mkdir()
    assert [found.name for found in list_experiments(str(tmp_path), "bccd_imbalance_", "sweep.json")] == [
        "bccd_imbalance_a", "bccd_imbalance_b"]
    assert find_experiment(str(tmp_path), "bccd_imbalance", None).name == "bccd_imbalance_b"
    with pytest.raises(FileNotFoundError, match="no experiment of all_unet"):
        find_experiment(str(tmp_path), "all_unet", None)


def test_named_experiment_is_never_overwritten(tmp_path):
    ExperimentLocation(str(tmp_path), "mine").write_text("sweep.json", "{}")
    with pytest.raises(FileExistsError, match="holds no Tune state .*remove that folder"):
        new_experiment(str(tmp_path), "bccd_imbalance", "mine")
    ExperimentLocation(str(tmp_path), "mine").write_text("tuner.pkl", "")
    with pytest.raises(FileExistsError, match="--resume --name mine"):
        new_experiment(str(tmp_path), "bccd_imbalance", "mine")
    assert new_experiment(str(tmp_path), "bccd_imbalance", None).name.startswith("bccd_imbalance_")


def test_storage_that_is_or_lies_below_a_file_is_refused_before_any_experiment(tmp_path):
    (tmp_path / "runs").write_text("a file")
    for storage in (tmp_path / "runs", tmp_path / "runs" / "deeper"):
        with pytest.raises(StorageError, match=rf"--storage {storage}: {tmp_path / 'runs'} is a file, not a directory"):
            check_writable_storage(storage=str(storage))
    with pytest.raises(StorageError, match="is a file, not a directory"):
        new_experiment(str(tmp_path / "runs"), "bccd_imbalance", None)


def test_storage_whose_nearest_existing_directory_is_not_writable_is_refused(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # The tests may run as root, whom permission bits do not stop; deny this directory instead.
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    storage = locked / "a" / "runs"
    with pytest.raises(StorageError, match=rf"the directory {locked} is not writable by this user, "
                                           rf"so {storage} cannot be created in it"):
        check_writable_storage(storage=str(storage))


def test_missing_local_storage_under_a_writable_directory_and_cloud_uris_pass(tmp_path):
    check_writable_storage(storage=str(tmp_path / "not" / "yet" / "there"))
    check_writable_storage(storage=str(tmp_path))
    check_writable_storage(storage="s3://bucket/runs")
