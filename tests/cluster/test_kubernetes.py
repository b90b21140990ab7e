"""cluster/kubernetes/: the manifests against KubeRay's CRD schemas offline (validate.py), the
checker itself on broken copies, and the project's rules for the manifests and the Dockerfile.

No Kubernetes runs here (no kind/k3s/minikube, no image pulls), and the image is not built (no
docker): these are the checks that can be made without them."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
KUBE = REPO / "cluster" / "kubernetes"
MANIFESTS = ("raycluster.yaml", "rayjob.yaml", "pvc.yaml")

pytest.importorskip("openapi_schema_validator", reason="pip install -e '.[cluster-test]' (make test-cluster)")
_spec = importlib.util.spec_from_file_location("medsweep_kube_validate", KUBE / "validate.py")
validate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(validate)


def _load(name: str) -> dict:
    return yaml.safe_load((KUBE / name).read_text())


def _problems(document: dict) -> list[str]:
    return validate.check_document(document, "copy")


def _cluster_spec(name: str) -> dict:
    document = _load(name)
    return document["spec"]["rayClusterSpec"] if document["kind"] == "RayJob" else document["spec"]


@pytest.mark.parametrize("name", MANIFESTS)
def test_each_manifest_passes_its_schema_and_the_key_check(name):
    assert validate.check_file(KUBE / name) == []


def test_the_command_line_says_ok_for_the_manifests_and_fails_on_a_broken_one(tmp_path):
    ok = subprocess.run([sys.executable, str(KUBE / "validate.py"), *(str(KUBE / n) for n in MANIFESTS)],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count(": ok") == len(MANIFESTS)
    broken = tmp_path / "raycluster.yaml"
    broken.write_text((KUBE / "raycluster.yaml").read_text().replace("maxReplicas:", "maxReplica:"))
    bad = subprocess.run([sys.executable, str(KUBE / "validate.py"), str(broken)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert f"{broken}: document 1 (RayCluster medsweep): unknown key spec.workerGroupSpecs[0].maxReplica;" in bad.stdout


@pytest.mark.parametrize(("where", "good", "bad"), [
    (("spec", "workerGroupSpecs", 0), "replicas", "replcas"),
    (("spec", "workerGroupSpecs", 0), "rayStartParams", "rayStartParam"),
    (("spec", "headGroupSpec"), "template", "templates"),
    (("spec", "headGroupSpec", "template", "spec", "containers", 0), "volumeMounts", "volumeMount"),
    (("spec", "workerGroupSpecs", 0, "template", "spec", "containers", 0, "resources"), "limits", "limit"),
])
def test_a_misspelled_key_fails_naming_its_path_and_the_valid_keys(where, good, bad):
    document = _load("raycluster.yaml")
    node = document
    for step in where:
        node = node[step]
    node[bad] = node.pop(good)
    problems = _problems(document)
    path = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in where).lstrip(".")
    assert any(f"unknown key {path}.{bad};" in p and good in p.split("valid keys")[1] for p in problems), problems


def test_a_misspelled_key_of_a_rayjob_fails():
    document = _load("rayjob.yaml")
    document["spec"]["shutdownAfterJobFinish"] = document["spec"].pop("shutdownAfterJobFinishes")
    assert any("unknown key spec.shutdownAfterJobFinish;" in p for p in _problems(document))


def test_a_misspelled_key_of_the_claim_fails():
    document = _load("pvc.yaml")
    document["spec"]["accessMode"] = document["spec"].pop("accessModes")
    problems = _problems(document)
    assert any("unknown key spec.accessMode;" in p for p in problems)
    assert any("'accessModes' is a required property" in p for p in problems)


@pytest.mark.parametrize(("name", "path", "value", "message"), [
    ("raycluster.yaml", ("spec", "workerGroupSpecs", 0, "maxReplicas"), "four", "'four' is not of type 'integer'"),
    ("raycluster.yaml", ("spec", "headGroupSpec", "rayStartParams", "num-cpus"), 0, "0 is not of type 'string'"),
    ("raycluster.yaml", ("spec", "autoscalerOptions", "upscalingMode"), "Fast", "'Fast' is not one of"),
    ("rayjob.yaml", ("spec", "shutdownAfterJobFinishes"), "yes", "'yes' is not of type 'boolean'"),
    ("pvc.yaml", ("spec", "accessModes", 0), "ReadWriteAll", "'ReadWriteAll' is not one of"),
])
def test_a_wrong_type_or_value_fails(name, path, value, message):
    document = _load(name)
    node = document
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    problems = _problems(document)
    location = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in path).lstrip(".")
    prefix = f"copy ({document['kind']} "
    assert any(p.startswith(prefix) and f": {location}: {message}" in p for p in problems), problems


def test_an_unknown_kind_is_an_error_not_a_pass():
    problems = _problems({"apiVersion": "ray.io/v1", "kind": "RayServce", "metadata": {"name": "x"}})
    assert len(problems) == 1 and "no schema for apiVersion 'ray.io/v1' kind 'RayServce'" in problems[0]


def test_the_key_check_honours_additional_properties_and_preserve_unknown_fields():
    schema = {"type": "object", "properties": {
        "params": {"type": "object", "additionalProperties": {"type": "string"}},
        "open": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"a": {}}},
        "free": {"type": "object"},
        "typed": {"type": "object", "additionalProperties": {"type": "object", "properties": {"x": {}}}},
        "list": {"type": "array", "items": {"type": "object", "properties": {"name": {}}}}}}
    fine = {"params": {"anything": "1"}, "open": {"b": {"c": 1}}, "free": {"z": 1},
            "typed": {"k": {"x": 1}}, "list": [{"name": "n"}]}
    assert list(validate.unknown_keys(fine, schema)) == []
    wrong = copy.deepcopy(fine)
    wrong["typed"]["k"]["y"] = 2
    wrong["list"].append({"nmae": "m"})
    wrong["extra"] = 1
    found = list(validate.unknown_keys(wrong, schema))
    assert [p.split(";")[0] for p in found] == ["unknown key typed.k.y", "unknown key list[1].nmae",
                                                "unknown key extra"], found
    # rayStartParams is additionalProperties: string in the CRD: any Ray option name passes.
    document = _load("raycluster.yaml")
    document["spec"]["workerGroupSpecs"][0]["rayStartParams"] = {"num-gpus": "1", "object-store-memory": "1000"}
    assert _problems(document) == []


def test_workers_get_gpus_the_head_none_and_every_pod_mounts_the_claim_at_the_storage_path():
    claim = _load("pvc.yaml")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    images = set()
    for name in ("raycluster.yaml", "rayjob.yaml"):
        spec = _cluster_spec(name)
        head = spec["headGroupSpec"]
        assert head["rayStartParams"]["num-cpus"] == "0"
        groups = [head, *spec["workerGroupSpecs"]]
        for group in groups:
            pod = group["template"]["spec"]
            volumes = {v["name"]: v for v in pod["volumes"]}
            container = pod["containers"][0]
            images.add(container["image"])
            runs = [m for m in container["volumeMounts"] if m["mountPath"] == "/mnt/runs"]
            assert len(runs) == 1, (name, container["name"])
            claimed = volumes[runs[0]["name"]]["persistentVolumeClaim"]["claimName"]
            assert claimed == claim["metadata"]["name"]
            gpus = {kind: container["resources"][kind].get("nvidia.com/gpu") for kind in ("requests", "limits")}
            if group is head:
                assert gpus == {"requests": None, "limits": None}, name
            else:
                assert gpus["limits"] == "1" and gpus["limits"] == gpus["requests"], name
    assert len(images) == 1, images


def test_the_rayjob_runs_a_sweep_on_the_claim_and_removes_its_cluster():
    job = _load("rayjob.yaml")["spec"]
    words = job["entrypoint"].split()
    assert words[:3] == ["python", "-m", "sweeps.run"]
    assert words[words.index("--storage") + 1] == "/mnt/runs" and words[words.index("--address") + 1] == "auto"
    assert job["shutdownAfterJobFinishes"] is True
    # The job's cluster is raycluster.yaml's, so the two files do not drift apart.
    assert job["rayClusterSpec"] == _load("raycluster.yaml")["spec"]


def test_the_ray_version_of_the_manifests_is_the_one_the_dockerfile_installs():
    dockerfile = (REPO / "Dockerfile").read_text()
    installed = re.search(r"^ARG RAY_VERSION=(\S+)$", dockerfile, re.M).group(1)
    assert 'ray[default]==${RAY_VERSION}' in dockerfile
    assert {_cluster_spec(name)["rayVersion"] for name in ("raycluster.yaml", "rayjob.yaml")} == {installed}


def test_the_image_leaves_out_environments_runs_data_and_history():
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", "runs", "data", ".git"} <= ignored
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    assert "pip install --no-deps ." in dockerfile and "COPY . ." in dockerfile


def test_the_vendored_crds_are_the_ones_source_md_names():
    source = (KUBE / "crds" / "SOURCE.md").read_text()
    assert "https://github.com/ray-project/kuberay" in source and "v1.7.0" in source
    for path in sorted((KUBE / "crds").glob("*.yaml")):
        assert hashlib.sha256(path.read_bytes()).hexdigest() in source, path.name
    assert {key[1] for key in validate.crd_schemas()} == {"RayCluster", "RayJob"}
