"""The dependencies pyproject.toml declares are true: the installed versions satisfy them, and
the floors cover what the code calls (NumPy's ``bitwise_count``, used by the leakage check's
hash comparisons, is NumPy 2.0's)."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import numpy as np
from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def declared() -> dict[str, Requirement]:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    return {requirement.name: requirement for requirement in map(Requirement, dependencies)}


def test_every_installed_dependency_satisfies_its_declared_range():
    unmet = {name: f"{requirement.specifier} declared, {metadata.version(name)} installed"
             for name, requirement in declared().items()
             if not requirement.specifier.contains(metadata.version(name), prereleases=True)}
    assert not unmet


def test_numpys_floor_is_at_least_the_version_that_has_bitwise_count():
    assert hasattr(np, "bitwise_count")          # trainables/datasets/leakage.py calls np.bitwise_count
    floors = [Version(spec.version) for spec in declared()["numpy"].specifier if spec.operator in (">=", "==", "~=")]
    assert floors and max(floors).major >= 2, f"numpy {declared()['numpy'].specifier} allows NumPy 1.x"
