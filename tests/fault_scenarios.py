"""Fault-tolerance scenarios, each run in its own Python process by ``test_faults.py``.

Each needs a Ray topology of its own (a multi-node ``ray.cluster_utils.Cluster``, or a driver
that gets SIGKILLed or SIGINTed), which cannot share the test session's Ray instance. Every scenario prints
one line ``RESULT <json>`` for the test to check.

    python tests/fault_scenarios.py SCENARIO WORKDIR DATA_DIR
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

# One trial per arm is enough to show scheduling and recovery; epochs of ~1 s leave time to act.
FEW_TRIALS = ("lr=[1e-3]", "weighted_loss=false")
SLOW_EPOCHS = ("max_epochs=6", "epoch_samples=192")


def progress(experiment: Path) -> dict[str, pd.DataFrame]:
    found = {}
    for path in experiment.glob("*/progress.csv"):
        try:
            found[path.parent.name] = pd.read_csv(path)
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            continue
    return found


def epochs_per_trial(experiment: Path) -> dict[str, list[int]]:
    return {trial: [int(e) for e in frame["epoch"]] for trial, frame in progress(experiment).items()}


def start_cluster(workers: int):
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    nodes = [cluster.add_node(num_cpus=1) for _ in range(workers)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    atexit.register(cluster.shutdown)
    return cluster, nodes


def sweep_options(workdir: Path, data_dir: str, name: str, overrides=FEW_TRIALS, **extra):
    from sweeps.sweep import SweepOptions
    return SweepOptions(name=extra.pop("sweep", "bccd_imbalance"), smoke=True, storage=str(workdir / "runs"),
                        experiment_name=name, data_dir=data_dir, overrides=tuple(overrides), **extra)


def multinode(workdir: Path, data_dir: str) -> dict:
    """A head with no CPUs and two one-CPU workers: trials must run on both workers."""
    from sweeps.sweep import run_sweep
    cluster, nodes = start_cluster(workers=2)
    outcome = run_sweep(sweep_options(workdir, data_dir, "multinode", storage_shared=True))
    used = {nid for frame in progress(outcome.experiment_dir).values() for nid in frame["node_id"]}
    return {"exit_code": outcome.exit_code, "used_nodes": sorted(used),
            "worker_nodes": sorted(n.node_id for n in nodes), "head_node": cluster.head_node.node_id,
            "reasons": list(outcome.summary["stop_reason"])}


def node_loss(workdir: Path, data_dir: str) -> dict:
    """Remove the worker running the only trial once it has a checkpoint: the trial must
    continue from that checkpoint on the other worker."""
    from sweeps.sweep import run_sweep
    cluster, nodes = start_cluster(workers=2)
    experiment = workdir / "runs" / "node_loss"
    removed = {}

    def remove_busy_node():
        while not removed:
            for frame in progress(experiment).values():
                if len(frame) >= 2:
                    busy = frame["node_id"].iloc[-1]
                    node = next(n for n in nodes if n.node_id == busy)
                    removed["node"], removed["after_epoch"] = busy, int(frame["epoch"].max())
                    cluster.remove_node(node, allow_graceful=False)
                    return
            time.sleep(0.2)

    threading.Thread(target=remove_busy_node, daemon=True).start()
    outcome = run_sweep(sweep_options(workdir, data_dir, "node_loss",
                                      overrides=(*FEW_TRIALS, "oversampling=false", *SLOW_EPOCHS),
                                      storage_shared=True))
    frame = next(iter(progress(outcome.experiment_dir).values()))
    return {"exit_code": outcome.exit_code, "reasons": list(outcome.summary["stop_reason"]),
            "removed": removed, "epochs": [int(e) for e in frame["epoch"]],
            "nodes_by_epoch": list(frame["node_id"])}


def driver_kill(workdir: Path, data_dir: str) -> dict:
    """SIGKILL the driver mid-sweep, then ``--resume``: every trial must finish exactly once and
    no trial that had a checkpoint may start again from epoch 1."""
    experiment = workdir / "runs" / "killed"
    command = [sys.executable, "-m", "sweeps.run", "bccd_imbalance", "--smoke", "--storage", str(workdir / "runs"),
               "--name", "killed", "--data-dir", data_dir]
    overrides = [arg for item in (*FEW_TRIALS, *SLOW_EPOCHS) for arg in ("--set", item)]
    log = open(workdir / "first.log", "w")
    driver = subprocess.Popen(command + overrides, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while time.time() < deadline and driver.poll() is None:
        epochs = epochs_per_trial(experiment)
        if any(len(e) >= 2 for e in epochs.values()):
            break
        time.sleep(0.2)
    time.sleep(2.5)
    before = {trial: max(e) for trial, e in epochs_per_trial(experiment).items()}
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    resumed = subprocess.run([*command[:3], "bccd_imbalance", "--resume", "--storage", str(workdir / "runs"),
                              "--name", "killed", "--data-dir", data_dir],
                             capture_output=True, text=True, timeout=400)
    summary = pd.read_csv(experiment / "summary.csv")
    return {"killed_returncode": driver.returncode, "resume_returncode": resumed.returncode,
            "resume_tail": resumed.stdout[-2000:] + resumed.stderr[-2000:],
            "epochs_before_kill": before, "epochs_after": epochs_per_trial(experiment),
            "summary_trials": list(summary["trial_id"]), "reasons": list(summary["stop_reason"])}


def interrupt(workdir: Path, data_dir: str) -> dict:
    """Ctrl-C (SIGINT) to the driver mid-sweep: Tune stops the trials, ``summary.csv`` marks the
    unfinished ones interrupted, the driver prints the command that continues the run, exits
    130 and leaves no Ray process; that command then finishes every trial once."""
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    env = dict(os.environ, RAY_TMPDIR=ray_tmp)
    experiment = workdir / "runs" / "interrupted"
    command = [sys.executable, "-m", "sweeps.run", "bccd_imbalance", "--smoke", "--storage", str(workdir / "runs"),
               "--name", "interrupted", "--data-dir", data_dir]
    overrides = [arg for item in (*FEW_TRIALS, *SLOW_EPOCHS) for arg in ("--set", item)]
    driver = subprocess.Popen(command + overrides, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.time() + 240
    while time.time() < deadline and driver.poll() is None:
        if any(epochs_per_trial(experiment).values()):
            break
        time.sleep(0.2)
    driver.send_signal(signal.SIGINT)
    output, _ = driver.communicate(timeout=180)
    leftover = subprocess.run(["pgrep", "-f", ray_tmp], capture_output=True, text=True).stdout.split()
    summary = pd.read_csv(experiment / "summary.csv")
    resume_lines = [line.strip() for line in output.splitlines() if line.strip().startswith("python -m sweeps.run")]
    resumed = subprocess.run([sys.executable, *shlex.split(resume_lines[-1])[1:]], capture_output=True, text=True,
                             timeout=400, env=env) if resume_lines else None
    final = pd.read_csv(experiment / "summary.csv")
    return {"returncode": driver.returncode, "output_tail": output[-3000:], "leftover_ray_processes": leftover,
            "reasons_at_interrupt": list(summary["stop_reason"]), "resume_lines": resume_lines,
            "resume_returncode": resumed.returncode if resumed else None,
            "resume_tail": (resumed.stdout[-2000:] + resumed.stderr[-2000:]) if resumed else "",
            "final_trials": list(final["trial_id"]), "final_reasons": list(final["stop_reason"]),
            "epochs_after": epochs_per_trial(experiment)}


def flaky_trainable(config, **kwargs):
    """The classification trainable, raising on each trial's first attempt only."""
    from ray import tune

    from trainables.classification import classification_trainable
    marker = Path(os.environ["MEDSWEEP_FLAKY_DIR"]) / tune.get_context().get_trial_id()
    if not marker.exists():
        marker.touch()
        raise RuntimeError("injected failure on the first attempt")
    classification_trainable(config, **kwargs)


def flaky(workdir: Path, data_dir: str) -> dict:
    """A trial that raises on its first attempt is retried (``--max-failures``) and completes."""
    import ray

    from sweeps.registry import SWEEPS, get_sweep
    from sweeps.sweep import run_sweep
    from trainables.registry import TRAINABLES

    os.environ["MEDSWEEP_FLAKY_DIR"] = str(workdir)
    TRAINABLES.add("flaky", dataclasses.replace(TRAINABLES["classification"], name="flaky", function=flaky_trainable))
    SWEEPS.add("bccd_flaky", dataclasses.replace(get_sweep("bccd_imbalance"), name="bccd_flaky", trainable="flaky"))
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"MEDSWEEP_FLAKY_DIR": str(workdir)}})
    outcome = run_sweep(sweep_options(workdir, data_dir, "flaky", sweep="bccd_flaky",
                                      overrides=(*FEW_TRIALS, "oversampling=false")))
    return {"exit_code": outcome.exit_code, "reasons": list(outcome.summary["stop_reason"]),
            "first_attempts_failed": len(list(workdir.glob("*_0000*"))),
            "epochs": epochs_per_trial(outcome.experiment_dir)}


SCENARIOS = {"multinode": multinode, "node_loss": node_loss, "driver_kill": driver_kill, "interrupt": interrupt,
             "flaky": flaky}

if __name__ == "__main__":
    scenario, workdir, data_dir = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    result = SCENARIOS[scenario](workdir, data_dir)
    print("RESULT " + json.dumps(result), flush=True)
    import ray
    ray.shutdown()
