"""``--help`` and usage errors answer at once: the command lines import PyTorch, Ray and the
rest of the sweep machinery only after their arguments have parsed.

What is measured is what the interpreter imported (``python -X importtime``), not seconds: the
heavy libraries are what made ``--help`` take 8 s, and whether they load does not depend on how
busy the machine is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Each takes seconds to import on a 2-core machine; none is needed to print help or a usage error.
HEAVY = ("torch", "ray", "timm", "torchvision", "pandas", "sklearn", "scipy", "matplotlib")


def imported_modules(*args: str) -> tuple[set[str], subprocess.CompletedProcess]:
    """The top-level modules ``python -X importtime -m ARGS`` imported, and the process."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names, done


@pytest.mark.parametrize("args, exit_code", [
    (("sweeps.run", "--help"), 0),
    (("sweeps.run",), 2),                                   # no sweep named: lists the valid names
    (("sweeps.run", "bccd_imbalance", "--profile", "gpu"), 2),
    (("sweeps.run", "bccd_imbalance", "--num-samples", "x"), 2),
    (("analysis.report", "--help"), 0),
    (("analysis.report",), 2),                              # no experiment named
])
def test_help_and_usage_errors_import_no_heavy_library(args, exit_code):
    names, done = imported_modules(*args)
    assert done.returncode == exit_code, done.stderr[-2000:]
    assert "usage:" in done.stdout + done.stderr
    assert sorted(names & set(HEAVY)) == []


def test_the_usage_error_without_a_sweep_lists_the_sweeps():
    from sweeps.registry import SWEEPS

    _, done = imported_modules("sweeps.run")
    assert all(name in done.stderr for name in SWEEPS)
