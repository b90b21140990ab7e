"""Issue 19, point 11: without Ray's table (verbose 0) Tune prints nothing of its own — Ray's
default output engine printed its "Configuration for experiment" box even then."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sweeps.tuner import NEW_OUTPUT_ENGINE, quiet_tune_output

REPO = Path(__file__).resolve().parents[1]
BOX = "Configuration for experiment"


def test_without_rays_table_the_silent_legacy_engine_is_chosen(monkeypatch):
    monkeypatch.delenv(NEW_OUTPUT_ENGINE, raising=False)
    quiet_tune_output(ray_table=True)
    assert NEW_OUTPUT_ENGINE not in os.environ
    quiet_tune_output(ray_table=False)
    assert os.environ[NEW_OUTPUT_ENGINE] == "0"


def tiny_tune_run(tmp_path: Path, *, quiet: bool) -> str:
    """The output of a one-trial Tuner at verbose 0, in a process of its own (the engine is
    chosen when it fits), after ``quiet_tune_output`` or without it."""
    script = textwrap.dedent(f"""
        import ray
        from ray import tune
        from sweeps.tuner import quiet_tune_output
        if {quiet}:
            quiet_tune_output(ray_table=False)
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
        tune.Tuner(lambda config: tune.report({{"x": 1}}), param_space={{"a": 1}},
                   run_config=tune.RunConfig(storage_path={str(tmp_path)!r}, name="quiet", verbose=0)).fit()
        ray.shutdown()
    """)
    environment = {key: value for key, value in os.environ.items() if key != NEW_OUTPUT_ENGINE}
    finished = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=environment, capture_output=True,
                              text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    return finished.stdout + finished.stderr


@pytest.mark.e2e
def test_a_tune_run_at_verbose_0_prints_no_configuration_box(tmp_path):
    assert BOX in tiny_tune_run(tmp_path / "default", quiet=False)    # what Ray's default engine does
    assert BOX not in tiny_tune_run(tmp_path / "quiet", quiet=True)
