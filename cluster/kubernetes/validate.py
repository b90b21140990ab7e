"""Check Kubernetes manifests offline against the schemas they will meet in a cluster.

    python cluster/kubernetes/validate.py FILE...

A RayCluster or RayJob document is validated against the openAPIV3Schema of KubeRay's CRD for its
apiVersion and kind (vendored in crds/, see crds/SOURCE.md) with openapi-schema-validator: wrong
types, missing required fields, values outside an enum. The API server also drops every key the
schema does not know (a misspelled `replcas` would silently mean "the default"), and the schema
itself does not forbid them, so every key is also checked against the properties the schema
declares at that place; additionalProperties and x-kubernetes-preserve-unknown-fields are
honoured where the schema has them. A PersistentVolumeClaim (core API, no CRD) gets the same two
checks against a small schema of the fields a claim may have (PVC_SCHEMA below). Any other
document is an error: this checker does not know its schema.

Prints one line per problem (file, document, key path, what is wrong) and exits 1 if there is
any; `make test-cluster` installs the one dependency (`pip install -e '.[cluster-test]'`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import yaml
from openapi_schema_validator import OAS30Validator

CRD_DIR = Path(__file__).resolve().parent / "crds"
# libyaml's loader where PyYAML has it: the two CRDs are large YAML documents.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_QUANTITY = {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
# The core/v1 PersistentVolumeClaim fields a claim is written with (Kubernetes API reference,
# PersistentVolumeClaimSpec); status and the rarer selector/dataSource sub-fields are left open.
PVC_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"type": "string", "enum": ["v1"]},
        "kind": {"type": "string", "enum": ["PersistentVolumeClaim"]},
        "metadata": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"}, "namespace": {"type": "string"},
            "labels": _STRING_MAP, "annotations": _STRING_MAP}},
        "spec": {"type": "object", "required": ["accessModes", "resources"], "properties": {
            "accessModes": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": [
                "ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]}},
            "resources": {"type": "object", "required": ["requests"], "properties": {
                "requests": {"type": "object", "required": ["storage"], "additionalProperties": _QUANTITY},
                "limits": {"type": "object", "additionalProperties": _QUANTITY}}},
            "storageClassName": {"type": "string"},
            "volumeMode": {"type": "string", "enum": ["Filesystem", "Block"]},
            "volumeName": {"type": "string"},
            "selector": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "dataSource": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "dataSourceRef": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "volumeAttributesClassName": {"type": "string"}}},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}
# The top-level metadata of a custom resource is an ObjectMeta the CRD schema leaves open
# (`metadata: {type: object}`); these are the keys a manifest sets there.
OBJECT_META = {"type": "object", "required": ["name"], "properties": {
    "name": {"type": "string"}, "namespace": {"type": "string"}, "generateName": {"type": "string"},
    "labels": _STRING_MAP, "annotations": _STRING_MAP}}


@cache
def crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) → openAPIV3Schema, for every served version of every vendored CRD."""
    schemas = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for crd in yaml.load_all(path.read_text(), Loader=_LOADER):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served", True):
                    schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def schema_for(document: dict) -> dict | None:
    key = (document.get("apiVersion"), document.get("kind"))
    if key == ("v1", "PersistentVolumeClaim"):
        return PVC_SCHEMA
    schema = crd_schemas().get(key)
    if schema is None:
        return None
    properties = dict(schema.get("properties", {}))
    if properties.get("metadata") == {"type": "object"}:
        properties["metadata"] = OBJECT_META
    return dict(schema, properties=properties)


def _path(parts) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts).lstrip(".") or "(top)"


def _branches(schema: dict) -> list[dict]:
    """The schema and the alternatives it combines (allOf/anyOf/oneOf), for the key check."""
    found = [schema]
    for combinator in ("allOf", "anyOf", "oneOf"):
        for branch in schema.get(combinator, []):
            found.extend(_branches(branch))
    return found


def unknown_keys(value, schema: dict, path: tuple = ()) -> Iterator[str]:
    """Every mapping key the schema does not declare at its place, as 'key path: valid keys'."""
    branches = _branches(schema)
    if any(branch.get("x-kubernetes-preserve-unknown-fields") for branch in branches):
        return
    if isinstance(value, dict):
        properties = {name: sub for branch in branches for name, sub in branch.get("properties", {}).items()}
        additional = [branch["additionalProperties"] for branch in branches if "additionalProperties" in branch]
        declared = bool(properties) or bool(additional)
        for key, item in value.items():
            if key in properties:
                yield from unknown_keys(item, properties[key], (*path, key))
            elif additional and isinstance(additional[0], dict):
                yield from unknown_keys(item, additional[0], (*path, key))
            elif additional and additional[0] is True:
                continue
            elif declared:
                yield (f"unknown key {_path((*path, key))}; valid keys at {_path(path)}: "
                       f"{', '.join(sorted(properties))}")
            # A plain `type: object` with neither properties nor additionalProperties is free-form.
    elif isinstance(value, list):
        items = [branch["items"] for branch in branches if isinstance(branch.get("items"), dict)]
        if items:
            for index, item in enumerate(value):
                yield from unknown_keys(item, items[0], (*path, index))


def check_document(document, where: str) -> list[str]:
    if not isinstance(document, dict):
        return [f"{where}: not a mapping"]
    name = (document.get("metadata") or {}).get("name", "?") if isinstance(document.get("metadata"), dict) else "?"
    where = f"{where} ({document.get('kind')} {name})"
    schema = schema_for(document)
    if schema is None:
        return [f"{where}: no schema for apiVersion {document.get('apiVersion')!r} kind {document.get('kind')!r}; "
                f"known: {', '.join(sorted(f'{a} {k}' for a, k in crd_schemas()))}, v1 PersistentVolumeClaim"]
    problems = [f"{where}: {message}" for message in unknown_keys(document, schema)]
    validator = OAS30Validator(schema)
    for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path))):
        problems.append(f"{where}: {_path(error.absolute_path)}: {error.message}")
    return problems


def check_file(path: str | Path) -> list[str]:
    """Every problem of every document in a YAML file (empty when all pass)."""
    path = Path(path)
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except (OSError, yaml.YAMLError) as error:
        return [f"{path}: {error}"]
    if not documents:
        return [f"{path}: no YAML document"]
    problems = []
    for number, document in enumerate(documents, 1):
        problems.extend(check_document(document, f"{path}: document {number}"))
    return problems


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    failed = False
    for name in argv:
        problems = check_file(name)
        failed |= bool(problems)
        for problem in problems:
            print(problem)
        if not problems:
            print(f"{name}: ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
