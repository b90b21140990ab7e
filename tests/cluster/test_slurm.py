"""The Slurm launch path for real: ``sbatch cluster/slurm/medsweep.sbatch`` on a one-node Slurm
started by the test (``slurm_cluster``), running the bccd_imbalance smoke sweep on a Ray cluster
of two nodes (the head plus one extra Ray worker on the same host,
``MEDSWEEP_RAY_HEAD_HOST_WORKERS=1``) on the real BCCD data. Needs root and Debian's Slurm and
munge: ``make test-cluster``."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import socket
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.cluster.slurm_cluster import pids_marked, slurm_cluster

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
SBATCH = REPO / "cluster" / "slurm" / "medsweep.sbatch"
SMOKE_TRIALS = 12
JOB_TIMEOUT = 420
PORT_STRIDE = 1000


def _ports_free(first: int, count: int) -> bool:
    for port in range(first, first + count):
        with socket.socket() as probe:
            try:
                probe.bind(("", port))
            except OSError:
                return False
    return True


def _port_base(nodes: int) -> int:
    """A base below the ephemeral range whose ``nodes`` port blocks are all free now."""
    for base in range(20000, 32000, PORT_STRIDE):
        if _ports_free(base, nodes * PORT_STRIDE):
            return base
    pytest.fail("no free block of ports between 20000 and 32000 for the Ray nodes")


@pytest.fixture(scope="module")
def ray_temp_dir():
    """Ray's temp dir for the job: short (Ray keeps Unix sockets there), removed afterwards."""
    path = Path(f"/tmp/msray-{secrets.token_hex(4)}")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def slurm(ray_temp_dir):
    with slurm_cluster(extra_markers=(str(ray_temp_dir),)) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def sweep_job(slurm, ray_temp_dir, shared_data_dir, tmp_path_factory):
    """The smoke sweep submitted with sbatch and run to its end: (job fields, job output, storage)."""
    work = tmp_path_factory.mktemp("slurm-job")
    storage = work / "runs"
    base = _port_base(nodes=2)
    env = {"MEDSWEEP_PYTHON": sys.executable, "MEDSWEEP_DATA_DIR": str(shared_data_dir),
           "MEDSWEEP_RAY_PORT": str(base - 1), "MEDSWEEP_RAY_NODE_PORT_BASE": str(base),
           "MEDSWEEP_RAY_NODE_PORT_STRIDE": str(PORT_STRIDE), "MEDSWEEP_RAY_HEAD_HOST_WORKERS": "1",
           "MEDSWEEP_RAY_TEMP_DIR": str(ray_temp_dir), "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "1",
           "MEDSWEEP_RAY_START_TIMEOUT": "120"}
    if not _ports_free(base - 1, 1):
        pytest.fail(f"port {base - 1} for the Ray head is taken")
    job_id = slurm.sbatch(f"--cpus-per-task={slurm.cpus}", f"--output={work}/medsweep-%j.out", str(SBATCH),
                          "bccd_imbalance", "--smoke", "--storage", str(storage), "--storage-shared",
                          "--cpus-per-trial", "1", env=env, cwd=work)
    fields = slurm.wait(job_id, timeout=JOB_TIMEOUT)
    output = Path(fields["StdOut"]).read_text(errors="replace")
    return job_id, fields, output, storage


def _diagnose(output: str, slurm) -> str:
    return f"job output (tail):\n{output[-4000:]}\n{slurm.diagnostics()}"


def test_sbatch_runs_the_smoke_sweep_to_completion(sweep_job, slurm):
    job_id, fields, output, storage = sweep_job
    assert (fields["JobState"], fields["ExitCode"]) == ("COMPLETED", "0:0"), _diagnose(output, slurm)
    assert "medsweep: Ray cluster ready: 2 nodes, 2 CPUs, 0 GPUs" in output, _diagnose(output, slurm)
    assert "medsweep: the driver exited with status 0" in output
    # The experiment is named after the job, so a requeued job would continue it.
    experiment = storage / f"bccd_imbalance_slurm{job_id}"
    assert json.loads((experiment / "sweep.json").read_text())["smoke"] is True
    summary = pd.read_csv(experiment / "summary.csv")
    assert len(summary) == SMOKE_TRIALS
    assert set(summary["status"]) == {"TERMINATED"}
    assert set(summary["stop_reason"]) <= {"completed", "stopped_by_asha"}
    assert (summary["epochs"] >= 1).all()


def test_trials_ran_on_both_ray_nodes(sweep_job, ray_temp_dir):
    """Each trial's results name the pid of the worker process that ran it; each Ray node's
    raylet logs the pids of the workers it started (raylet.out, raylet.1.out in one session)."""
    job_id, _, _, storage = sweep_job
    experiment = storage / f"bccd_imbalance_slurm{job_id}"
    trial_pids = {json.loads(line)["pid"] for result in experiment.glob("*/result.json")
                  for line in result.read_text().splitlines() if line.strip()}
    raylet_logs = sorted(log for log in ray_temp_dir.glob("session_*/logs/raylet*.out")
                         if not log.parents[1].is_symlink())  # not session_latest again
    assert len(raylet_logs) == 2, raylet_logs
    started = {log.name: {int(pid) for pid in re.findall(r"Started worker process with pid (\d+)", log.read_text())}
               for log in raylet_logs}
    nodes_with_trials = {name for name, pids in started.items() if pids & trial_pids}
    assert nodes_with_trials == set(started), (started, trial_pids)


def test_the_job_leaves_no_ray_process_behind(sweep_job, slurm, ray_temp_dir):
    """The sbatch stops its Ray steps itself when the sweep ends: once the job has completed, no
    step is left and no process uses the job's Ray temp dir (before the fixture's own clean-up)."""
    job_id, _, output, _ = sweep_job
    assert "medsweep: stopping the Ray nodes" in output
    assert slurm.run("squeue", "-h", "-s", "-j", str(job_id), "-o", "%i", check=False).stdout.split() == []
    assert pids_marked([str(ray_temp_dir)]) == []


def test_a_requeued_job_resumes_its_experiment(slurm, ray_temp_dir, shared_data_dir, tmp_path):
    """``scontrol requeue`` mid-sweep (what pre-emption with PreemptMode=REQUEUE does): the job's
    second run passes --resume --name <the same experiment> and finishes every trial there."""
    storage = tmp_path / "runs"
    base = _port_base(nodes=2)
    env = {"MEDSWEEP_PYTHON": sys.executable, "MEDSWEEP_DATA_DIR": str(shared_data_dir),
           "MEDSWEEP_RAY_PORT": str(base - 1), "MEDSWEEP_RAY_NODE_PORT_BASE": str(base),
           "MEDSWEEP_RAY_NODE_PORT_STRIDE": str(PORT_STRIDE), "MEDSWEEP_RAY_HEAD_HOST_WORKERS": "1",
           "MEDSWEEP_RAY_TEMP_DIR": str(ray_temp_dir), "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "1"}
    job_id = slurm.sbatch(f"--cpus-per-task={slurm.cpus}", f"--output={tmp_path}/medsweep-%j.out", str(SBATCH),
                          "bccd_imbalance", "--smoke", "--set", "lr=[1e-3]", "--storage", str(storage),
                          "--storage-shared", "--cpus-per-trial", "1", env=env, cwd=tmp_path)
    experiment = storage / f"bccd_imbalance_slurm{job_id}"
    deadline = time.monotonic() + JOB_TIMEOUT
    # Requeue once Tune has saved its state and a trial its first checkpoint.
    while not ((experiment / "tuner.pkl").is_file() and any(experiment.glob("*/checkpoint_*"))):
        assert slurm.job(job_id)["JobState"] in {"PENDING", "RUNNING"}, Path(f"{tmp_path}/medsweep-{job_id}.out")
        assert time.monotonic() < deadline
        time.sleep(1)
    slurm.run("scontrol", "requeue", str(job_id))
    # The second run starts once the first has ended and the requeue delay (slurm.conf's
    # AuthInfo cred_expire, shortened by slurm_cluster) has passed.
    fields = slurm.wait(job_id, timeout=JOB_TIMEOUT)
    output = Path(fields["StdOut"]).read_text(errors="replace")
    assert (fields["JobState"], fields["ExitCode"], fields["Restarts"]) == ("COMPLETED", "0:0", "1"), \
        _diagnose(output, slurm)
    assert output.count("medsweep: Ray cluster ready: 2 nodes") == 2
    assert f"medsweep: restart 1: resuming experiment {experiment.name}" in output
    assert [path.name for path in storage.iterdir()] == [experiment.name]
    summary = pd.read_csv(experiment / "summary.csv")
    assert len(summary) == 4
    assert set(summary["status"]) == {"TERMINATED"}
