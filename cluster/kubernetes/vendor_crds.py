"""Vendor KubeRay's CRDs for ``validate.py``: ``python cluster/kubernetes/vendor_crds.py
KUBERAY_CHECKOUT`` copies the RayCluster and RayJob CRDs of a kuberay checkout into crds/ as the
same data written compactly: every subtree that occurs more than once (the pod template schema
appears for the head, every worker group and again inside a RayJob) is written once as a YAML
anchor and referred to by alias, which takes 2.3 MB down to about 260 kB. The copy is checked to
load to exactly the upstream data, and the sha256 of each upstream file and of its copy are
printed for crds/SOURCE.md."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import yaml

CRDS = ("ray.io_rayclusters.yaml", "ray.io_rayjobs.yaml")
UPSTREAM_DIR = Path("helm-chart/kuberay-operator/crds")
CRD_DIR = Path(__file__).resolve().parent / "crds"
# Subtrees shorter than this (as JSON) are written out where they occur: an alias saves nothing.
SHARED_MIN_CHARACTERS = 400


def shared_subtrees(node, seen: dict):
    """``node`` with each repeated large subtree replaced by one shared object, which PyYAML's
    dumper then writes once (as an anchor) and refers to by alias."""
    if isinstance(node, dict):
        node = {key: shared_subtrees(value, seen) for key, value in node.items()}
    elif isinstance(node, list):
        node = [shared_subtrees(value, seen) for value in node]
    else:
        return node
    text = json.dumps(node, sort_keys=True)
    return node if len(text) < SHARED_MIN_CHARACTERS else seen.setdefault(text, node)


def vendor(checkout: Path) -> None:
    for name in CRDS:
        upstream = (checkout / UPSTREAM_DIR / name).read_bytes()
        documents = list(yaml.load_all(upstream, Loader=yaml.CSafeLoader))
        seen = {}
        copy = yaml.dump_all([shared_subtrees(document, seen) for document in documents], Dumper=yaml.CSafeDumper,
                             sort_keys=False, width=120).encode()
        if list(yaml.load_all(copy, Loader=yaml.CSafeLoader)) != documents:
            raise SystemExit(f"{name}: the compact copy does not load to the upstream data")
        (CRD_DIR / name).write_bytes(copy)
        print(f"{name}: upstream sha256 {hashlib.sha256(upstream).hexdigest()}, "
              f"vendored sha256 {hashlib.sha256(copy).hexdigest()} ({len(copy) / 1e3:.0f} kB)")


if __name__ == "__main__":
    vendor(Path(sys.argv[1]))
