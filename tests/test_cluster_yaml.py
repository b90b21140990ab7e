"""cluster/aws.yaml against Ray's own autoscaler schema, offline; and the project's rules for it."""

from __future__ import annotations

import copy
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER_YAML = Path(__file__).resolve().parents[1] / "cluster" / "aws.yaml"


@pytest.fixture()
def cluster() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_cluster_yaml_passes_rays_offline_validation(cluster):
    validate_config(prepare_config(copy.deepcopy(cluster)))


def test_head_runs_no_trials_and_every_node_type_declares_resources(cluster):
    types = cluster["available_node_types"]
    assert types[cluster["head_node_type"]]["resources"] == {"CPU": 0}
    assert all("resources" in node for node in types.values())
    workers = [node for name, node in types.items() if name != cluster["head_node_type"]]
    assert any(node["resources"].get("GPU", 0) >= 1 and node["min_workers"] == 0 for node in workers)
    assert cluster["idle_timeout_minutes"] > 0


def test_dashboard_listens_on_localhost_only(cluster):
    head_start = " ".join(cluster["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start and "0.0.0.0" not in head_start
    ports = [p["FromPort"] for p in cluster["provider"]["security_group"]["IpPermissions"]]
    assert ports == [22]


def test_the_open_ssh_range_says_how_to_narrow_it():
    lines = CLUSTER_YAML.read_text().splitlines()
    ssh_range = next(i for i, line in enumerate(lines) if "CidrIp:" in line and not line.strip().startswith("#"))
    advice = " ".join(lines[max(0, ssh_range - 4):ssh_range])
    assert "Narrow it" in advice and "/32" in advice


def test_a_typo_in_a_key_is_caught(cluster):
    cluster["idle_timout_minutes"] = cluster.pop("idle_timeout_minutes")
    with pytest.raises(jsonschema.ValidationError, match="idle_timout_minutes"):
        validate_config(prepare_config(cluster))


def test_a_wrong_node_type_reference_is_caught(cluster):
    cluster["head_node_type"] = "haed"
    with pytest.raises(ValueError, match="`head_node_type` must be one of `available_node_types`"):
        validate_config(prepare_config(cluster))


def test_a_typo_inside_a_node_type_is_caught(cluster):
    worker = cluster["available_node_types"]["gpu_worker"]
    worker["resourcez"] = worker.pop("resources")
    with pytest.raises(jsonschema.ValidationError, match="'resources' is a required property"):
        validate_config(prepare_config(cluster))


def _pip_installs(command: str) -> list[list[str]]:
    """The arguments of each ``pip install`` in a shell command line (``a && b`` split apart)."""
    installs = []
    for part in command.split("&&"):
        words = shlex.split(part)
        if "pip" in words and "install" in words[words.index("pip"):]:
            installs.append(words[words.index("install") + 1:])
    return installs


def test_every_node_installs_ray_default_with_medsweep(cluster):
    installs = [args for command in cluster["setup_commands"] for args in _pip_installs(command)]
    assert any("ray[default]" in args and "." in args for args in installs), cluster["setup_commands"]


def test_pip_install_reading_tells_ray_default_from_ray_tune():
    assert _pip_installs("cd ~/medsweep && python3 -m pip install -e . 'ray[default]'") == [["-e", ".", "ray[default]"]]
    assert _pip_installs("python3 -m pip install -e . 'ray[tune]'") == [["-e", ".", "ray[tune]"]]
    assert _pip_installs("mkdir -p ~/data") == []
