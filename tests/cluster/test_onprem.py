"""cluster/onprem.yaml for real: `ray up` over SSH to a head and a worker "machine" (namespaces
on this host, see onprem_cluster.py), `ray submit` of the smoke sweep, `ray down`.

Needs root (namespaces, sshd); run with `make test-cluster`."""

from __future__ import annotations

import copy
import os
import re
import secrets
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from sweeps.summary import KNOWN_REASONS
from tests.cluster.onprem_cluster import Lab, lab_config, missing_tools

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
ONPREM_YAML = REPO / "cluster" / "onprem.yaml"


@pytest.fixture()
def shipped() -> dict:
    return yaml.safe_load(ONPREM_YAML.read_text())


def test_onprem_yaml_passes_rays_offline_validation(shipped):
    validate_config(prepare_config(copy.deepcopy(shipped)))


def test_onprem_yaml_keeps_every_listed_worker_and_picks_autoscaler_v1(shipped):
    workers = len(shipped["provider"]["worker_ips"])
    assert shipped["min_workers"] == shipped["max_workers"] == workers
    head_start = " ".join(shipped["head_start_ray_commands"])
    assert "RAY_enable_autoscaler_v2=0 ray start --head" in head_start and "--num-cpus=0" in head_start
    assert "--dashboard-host=127.0.0.1" in head_start
    assert any("RAY_AUTH_MODE=token" in command for command in shipped["setup_commands"])
    assert shipped["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"


def _check(done, what: str) -> str:
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{what} failed ({done.returncode}):\n{output[-6000:]}"
    return output


@pytest.fixture()
def lab(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root: network/PID namespaces and sshd")
    missing = missing_tools()
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run cluster/tests/install-debian-packages.sh")
    with Lab(tmp_path / "lab", workers=1) as lab:
        yield lab


def test_ray_up_submit_down_runs_the_smoke_sweep_on_a_head_and_a_worker(lab, shipped, shared_data_dir, tmp_path):
    started = time.monotonic()
    name = f"medsweep-onprem-test-{os.getpid()}-{secrets.token_hex(3)}"
    lab.cluster_names.append(name)
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    config = lab_config(shipped, lab, cluster_name=name, token=token, venv=Path(sys.prefix))
    config_file = tmp_path / "onprem-test.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    storage = tmp_path / "runs"
    storage.mkdir()

    _check(lab.ray("up", "-y", "--no-config-cache", str(config_file)), "ray up")
    try:
        # The worker joins through the head's autoscaler (v1, chosen in onprem.yaml itself).
        deadline = time.monotonic() + 90
        while True:
            status = lab.ray("exec", str(config_file), "ray status", timeout=60)
            active = re.search(r"Active:\s*\n\s*(\d+) local\.cluster\.node", status.stdout)
            if (active and int(active.group(1)) == 2) or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert active and int(active.group(1)) == 2, f"the worker never joined:\n{status.stdout}{status.stderr}"
        joined = time.monotonic() - started

        # Two trials of the smoke grid (one lr, no oversampling), both at once on the worker's 2 CPUs.
        submit = _check(lab.ray(
            "submit", str(config_file), "sweeps/run.py", "--", "bccd_imbalance", "--smoke", "--address", "auto",
            "--storage", str(storage), "--storage-shared", "--cpus-per-trial", "1",
            "--data-dir", str(shared_data_dir), "--set", "lr=[0.001]", "--set", "oversampling=[false]",
            timeout=240), "ray submit")
        submitted = time.monotonic() - started
    finally:
        down = lab.ray("down", "-y", str(config_file), timeout=90)
    _check(down, "ray down")

    experiments = [path for path in storage.iterdir() if path.is_dir()]
    assert len(experiments) == 1, (experiments, submit[-3000:])
    # The head has no CPUs for trials (--num-cpus=0 in onprem.yaml): every trial ran on the worker.
    summary = pd.read_csv(experiments[0] / "summary.csv")
    assert len(summary) == 2, summary.to_string()
    assert set(summary["stop_reason"]) <= set(KNOWN_REASONS) - {"errored"}, summary.to_string()
    assert (summary["status"] == "TERMINATED").all(), summary.to_string()
    assert all((experiments[0] / trial / "progress.csv").is_file() for trial in summary["trial_id"])
    print(f"worker joined after {joined:.0f} s, sweep done after {submitted:.0f} s, "
          f"ray down done after {time.monotonic() - started:.0f} s")
