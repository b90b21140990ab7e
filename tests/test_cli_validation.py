"""Bad values on the command line: exit 2 with one ``error:`` line naming the flag or ``--set``
item, the value and what is allowed, before the data audit and before Ray starts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sweeps.run
import sweeps.sweep
from sweeps.run import main

REPO = Path(__file__).resolve().parents[1]

BAD_VALUES = [
    (["--check-data", "--set", "image_size=-5"],
     "--set image_size=-5: data setting 'image_size' must be a whole number of pixels, at least 8, got -5"),
    (["--check-data", "--set", "image_size=abc"],
     "--set image_size=abc: data setting 'image_size' must be int, got 'abc'"),
    (["--check-data", "--set", "padding=-100"],
     "--set padding=-100: data setting 'padding' must be a whole number of pixels, 0 or more, got -100"),
    (["--check-data", "--set", "images_per_split=-1"],
     "--set images_per_split=-1: data setting 'images_per_split' must be a whole number of at least 1, "
     "or null for every image, got -1"),
    (["--smoke", "--num-samples", "0"], "--num-samples 0: must be a whole number of at least 1"),
    (["--smoke", "--num-samples", "-1"], "--num-samples -1: must be a whole number of at least 1"),
    (["--smoke", "--max-failures", "-1"], "--max-failures -1: must be a whole number of at least 0"),
    (["--smoke", "--cpus-per-trial", "-1"], "--cpus-per-trial -1.0: must be a finite number, 0 or more"),
    (["--smoke", "--gpus-per-trial", "inf"], "--gpus-per-trial inf: must be a finite number, 0 or more"),
    (["--smoke", "--gpus-per-trial", "nan"], "--gpus-per-trial nan: must be a finite number, 0 or more"),
    (["--smoke", "--set", "lr=.inf"], "--set lr=.inf: config key 'lr' must be a finite number, got inf"),
    (["--smoke", "--set", "dropout=nan"], "--set dropout=nan: config key 'dropout' must be a finite number, got nan"),
    (["--smoke", "--set", "lr=abc"], "--set lr=abc: config key 'lr' must be float, got 'abc'"),
]


@pytest.fixture
def no_ray_no_audit(monkeypatch):
    """Starting Ray or auditing the data fails the test."""
    def ray_started(address):
        raise AssertionError("Ray was asked to start")

    def audit_ran(resolved, **kwargs):
        raise AssertionError("the data audit ran")

    monkeypatch.setattr(sweeps.sweep, "ensure_ray", ray_started)
    monkeypatch.setattr(sweeps.sweep, "prepare_sweep_data", audit_ran)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("args, message", BAD_VALUES, ids=[" ".join(a) for a, _ in BAD_VALUES])
def test_a_bad_value_exits_2_with_one_line_before_the_audit_and_ray(args, message, no_ray_no_audit, capsys, tmp_path):
    assert main(["bccd_imbalance", *args, "--storage", str(tmp_path / "runs")]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), lines
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("target", ["file", "file/below"])
def test_storage_at_or_below_a_file_exits_2_before_the_audit_and_ray(target, no_ray_no_audit, capsys, tmp_path):
    (tmp_path / "file").write_text("not a directory")
    storage = tmp_path / target
    assert main(["bccd_imbalance", "--smoke", "--storage", str(storage)]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert lines == [f"error: --storage {storage}: {tmp_path / 'file'} is a file, not a directory, so experiments "
                     f"cannot be written there; pass --storage a directory (it is created when missing) or move "
                     f"the file away"]


def test_a_valid_annotations_setting_reaches_the_data_preparation(monkeypatch):
    seen = {}

    def audit(resolved, **kwargs):
        seen["annotations"] = resolved.data.options.annotations
        raise AssertionError("stop here: the data settings were accepted")

    monkeypatch.setattr(sweeps.sweep, "prepare_sweep_data", audit)
    with pytest.raises(AssertionError, match="stop here"):
        main(["lymphoblast_maskrcnn", "--check-data", "--set", "annotations=via_project.json"])
    assert seen == {"annotations": "via_project.json"}


def test_a_bad_image_size_fails_fast_end_to_end_without_ray(tmp_path):
    """The real command in a fresh interpreter: exit 2, one stderr line, no traceback, no Ray
    session (Ray would create its session directory under RAY_TMPDIR), in seconds."""
    ray_dir = tmp_path / "ray"
    env = {**os.environ, "RAY_TMPDIR": str(ray_dir)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "sweeps.run", "bccd_imbalance", "--check-data",
                           "--set", "image_size=-5"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    elapsed = time.perf_counter() - started
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert error_lines(done.stderr) == ["error: --set image_size=-5: data setting 'image_size' must be a whole "
                                        "number of pixels, at least 8, got -5"]
    assert not ray_dir.exists()
    # About 7 s on 2 shared cores, nearly all of it importing torch and timm; the audit alone
    # of the real data at this size would take far longer. The bound leaves room for a busy machine.
    assert elapsed < 20, f"took {elapsed:.1f} s"
