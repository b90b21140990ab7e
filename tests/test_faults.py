"""Fault tolerance on one machine: multi-node scheduling, a lost worker node, a killed driver,
a trial that fails once. Each scenario runs in its own process (see fault_scenarios.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sweeps.storage import StorageError, check_shared_storage

pytestmark = pytest.mark.e2e
SCRIPT = Path(__file__).with_name("fault_scenarios.py")


def run_scenario(name: str, workdir: Path, data_dir: Path) -> dict:
    done = subprocess.run([sys.executable, str(SCRIPT), name, str(workdir), str(data_dir)],
                          capture_output=True, text=True, timeout=600, cwd=SCRIPT.parents[1])
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def strictly_increasing(epochs: list[int]) -> bool:
    return all(b == a + 1 for a, b in zip(epochs, epochs[1:])) and epochs[:1] == [1]


def test_trials_spread_over_both_worker_nodes_and_never_the_cpu_less_head(tmp_path, shared_data_dir):
    result = run_scenario("multinode", tmp_path, shared_data_dir)
    assert result["exit_code"] == 0
    assert set(result["used_nodes"]) == set(result["worker_nodes"])
    assert result["head_node"] not in result["used_nodes"]


def test_trial_on_a_removed_node_resumes_from_its_checkpoint_elsewhere(tmp_path, shared_data_dir):
    result = run_scenario("node_loss", tmp_path, shared_data_dir)
    assert result["exit_code"] == 0 and result["reasons"] == ["completed"]
    assert strictly_increasing(result["epochs"]) and result["epochs"][-1] == 6
    after = result["nodes_by_epoch"][result["removed"]["after_epoch"]:]
    assert after and result["removed"]["node"] not in after


def test_killed_driver_resumes_and_finishes_every_trial_once(tmp_path, shared_data_dir):
    result = run_scenario("driver_kill", tmp_path, shared_data_dir)
    assert result["killed_returncode"] == -9
    assert result["resume_returncode"] == 0, result["resume_tail"]
    assert sorted(result["summary_trials"]) == sorted(set(result["summary_trials"]))
    assert set(result["summary_trials"]) == set(result["epochs_after"])
    assert "errored" not in result["reasons"]
    assert any(epoch >= 1 for epoch in result["epochs_before_kill"].values())
    for trial, epochs in result["epochs_after"].items():
        assert strictly_increasing(epochs), f"{trial} was restarted from scratch: {epochs}"


def test_ctrl_c_writes_the_summary_prints_the_resume_command_and_resume_finishes(tmp_path, shared_data_dir):
    result = run_scenario("interrupt", tmp_path, shared_data_dir)
    assert result["returncode"] == 130, result["output_tail"]
    assert "interrupted" in result["reasons_at_interrupt"], result["output_tail"]
    assert result["resume_lines"] and " --resume --name interrupted" in result["resume_lines"][-1]
    assert result["leftover_ray_processes"] == []
    assert result["resume_returncode"] == 0, result["resume_tail"]
    assert sorted(result["final_trials"]) == sorted(set(result["final_trials"])) and len(result["final_trials"]) == 2
    assert "interrupted" not in result["final_reasons"] and "errored" not in result["final_reasons"]
    for trial, epochs in result["epochs_after"].items():
        assert epochs == sorted(set(epochs)), f"{trial} repeated epochs: {epochs}"


def test_trial_failing_on_its_first_attempt_is_retried_and_completes(tmp_path, shared_data_dir):
    result = run_scenario("flaky", tmp_path, shared_data_dir)
    assert result["first_attempts_failed"] == 1
    assert result["exit_code"] == 0 and result["reasons"] == ["completed"]


def test_multi_node_with_local_storage_fails_early_saying_what_to_set(tmp_path):
    with pytest.raises(StorageError, match=r"s3://bucket/runs.*NFS path.*--storage-shared"):
        check_shared_storage(str(tmp_path), nodes=2, declared_shared=False)
    check_shared_storage(str(tmp_path), nodes=1, declared_shared=False)
    check_shared_storage(str(tmp_path), nodes=3, declared_shared=True)
    check_shared_storage("s3://bucket/runs", nodes=3, declared_shared=False)
