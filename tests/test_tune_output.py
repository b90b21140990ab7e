"""Issue 19, point 11: without Ray's table (verbose 0) Tune prints nothing of its own — Ray's
default output engine printed its "Configuration for experiment" box even then. A real sweep's
output is checked in tests/test_e2e_smoke.py (the diverging sweep prints no box)."""

from __future__ import annotations

import os

from sweeps.tuner import NEW_OUTPUT_ENGINE, quiet_tune_output


def test_without_rays_table_the_silent_legacy_engine_is_chosen(monkeypatch):
    monkeypatch.delenv(NEW_OUTPUT_ENGINE, raising=False)
    quiet_tune_output(ray_table=True)
    assert NEW_OUTPUT_ENGINE not in os.environ
    quiet_tune_output(ray_table=False)
    assert os.environ[NEW_OUTPUT_ENGINE] == "0"
