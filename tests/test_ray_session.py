"""Reaching Ray: a dead address and an impossible resource request are clear errors within
seconds and leave no experiment behind; a local instance asks every client for its token;
``--resume`` picks an experiment that can be resumed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sweeps.ray_session import NodeCapacity, RayConnectionError, ResourceRequestError, check_trial_resources
from sweeps.storage import SWEEP_FILE, TUNE_STATE_FILE, find_experiment
from sweeps.sweep import SweepOptions, run_sweep

REPO = Path(__file__).resolve().parents[1]


def run_python(code: str, *, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env={**os.environ, **(env or {})})


def test_a_dead_address_is_a_clear_error_within_the_timeout_and_writes_nothing(tmp_path):
    started = time.perf_counter()
    done = run_python(f"""
        import sweeps.ray_session
        from sweeps.run import main
        sweeps.ray_session.CONNECT_TIMEOUT_SECONDS = 3
        raise SystemExit(main(["bccd_imbalance", "--smoke", "--address", "127.0.0.1:1",
                               "--storage", {str(tmp_path / 'runs')!r}]))
    """)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "--address 127.0.0.1:1: no Ray cluster answered at 127.0.0.1:1 within 3 s" in done.stderr
    assert "Traceback" not in done.stderr
    assert time.perf_counter() - started < 60
    assert not (tmp_path / "runs").exists()


def test_an_address_that_is_not_host_port_is_named():
    from sweeps.ray_session import wait_for_cluster
    with pytest.raises(RayConnectionError, match="expected HOST:PORT"):
        wait_for_cluster("my-head-node", timeout=1)


@pytest.mark.e2e
def test_more_gpus_than_the_machine_has_fails_before_the_audit_and_writes_nothing(ray_session, tmp_path, monkeypatch):
    import sweeps.run
    import sweeps.sweep

    def no_audit(*args, **kwargs):
        raise AssertionError("the data audit ran")

    monkeypatch.setattr(sweeps.sweep, "prepare_sweep_data", no_audit)
    with pytest.raises(ResourceRequestError, match=r"asks for 1 CPU \+ 3 GPU.*no node of the local machine"):
        run_sweep(SweepOptions(name="bccd_imbalance", smoke=True, gpus_per_trial=3, storage=str(tmp_path)))
    assert list(tmp_path.iterdir()) == []


def test_resources_no_node_can_hold_fail_locally_and_warn_on_an_autoscaling_cluster(monkeypatch):
    import sweeps.ray_session as session
    monkeypatch.setattr(session, "node_capacities",
                        lambda: [NodeCapacity(cpus=2, gpus=0), NodeCapacity(cpus=8, gpus=1)])
    warnings: list[str] = []
    check_trial_resources(cpus=4, gpus=1, local=True, warn=warnings.append)
    with pytest.raises(ResourceRequestError, match=r"2 CPU \+ 0 GPU, 8 CPU \+ 1 GPU"):
        check_trial_resources(cpus=1, gpus=2, local=True, warn=warnings.append)
    monkeypatch.setattr(session, "cluster_autoscales", lambda: False)
    with pytest.raises(ResourceRequestError, match="no node of the cluster"):
        check_trial_resources(cpus=1, gpus=2, local=False, warn=warnings.append)
    monkeypatch.setattr(session, "cluster_autoscales", lambda: True)
    check_trial_resources(cpus=1, gpus=2, local=False, warn=warnings.append)
    assert len(warnings) == 1 and "autoscaler may add such a node" in warnings[0]


def test_resume_picks_the_newest_experiment_that_holds_tune_state(tmp_path):
    def experiment(name: str, *, tune_state: bool) -> None:
        folder = tmp_path / name
        folder.mkdir()
        (folder / SWEEP_FILE).write_text(json.dumps({"sweep": "bccd_imbalance"}))
        if tune_state:
            (folder / TUNE_STATE_FILE).write_bytes(b"")

    experiment("bccd_imbalance_20261201-100000", tune_state=True)
    experiment("bccd_imbalance_20261202-100000", tune_state=False)
    assert find_experiment(str(tmp_path), "bccd_imbalance", None).name == "bccd_imbalance_20261201-100000"
    from trainables.errors import ExperimentNotFoundError
    with pytest.raises(ExperimentNotFoundError, match="holds no Tune state"):
        find_experiment(str(tmp_path), "bccd_imbalance", "bccd_imbalance_20261202-100000")


def test_a_local_run_with_authentication_turned_off_is_warned_about(monkeypatch):
    from sweeps.ray_session import local_auth_warning
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert "listen on every network interface" in local_auth_warning()
    monkeypatch.delenv("RAY_AUTH_MODE")
    assert local_auth_warning() is None


@pytest.mark.e2e
def test_a_local_instance_refuses_clients_without_its_token(tmp_path):
    """Ray's servers listen on every interface (Ray 2.60 cannot bind them to 127.0.0.1); its
    token is what keeps others out, so the project relies on it being on for local runs."""
    done = run_python(f"""
        import json, os, subprocess, sys
        import ray
        from sweeps.ray_session import ensure_ray
        ensure_ray(None)
        gcs = ray.get_runtime_context().gcs_address
        probe = ("from ray._raylet import GcsClient; "
                 "GcsClient(address=%r).internal_kv_keys(b'', namespace=None, timeout=10)" % gcs)
        env = dict(os.environ, HOME={str(tmp_path)!r}, RAY_AUTH_MODE="disabled")
        env.pop("RAY_AUTH_TOKEN", None)
        client = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
        print("RESULT " + json.dumps({{"returncode": client.returncode, "stderr": client.stderr[-1500:]}}))
        ray.shutdown()
    """, timeout=180)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["returncode"] != 0 and "Authentication token is missing or incorrect" in result["stderr"]


def test_a_nodes_gpu_type_is_read_from_rays_accelerator_resource(monkeypatch):
    import ray

    from sweeps import ray_session
    nodes = [{"Alive": True, "Resources": {"CPU": 32.0, "GPU": 4.0, "accelerator_type:A100": 1.0}},
             {"Alive": True, "Resources": {"CPU": 2.0}},
             {"Alive": False, "Resources": {"CPU": 8.0, "GPU": 1.0, "accelerator_type:T4": 1.0}}]
    monkeypatch.setattr(ray, "nodes", lambda: nodes)
    assert ray_session.node_capacities() == [NodeCapacity(cpus=32, gpus=4, accelerator="A100"),
                                             NodeCapacity(cpus=2, gpus=0)]
