"""``--dashboard``: the local Ray dashboard on 127.0.0.1, refused clearly without ``ray[default]``
or with ``--address``, before Ray starts (``ray.init`` is faked: no Ray instance here)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import sweeps.run
import sweeps.sweep
from sweeps import ray_session
from sweeps.ray_session import DashboardError, check_dashboard, ensure_ray
from sweeps.run import build_parser, main, options_from_args
from trainables.errors import MedsweepError

MISSING = ImportError("No module named 'aiohttp'")


@pytest.fixture
def fake_ray(monkeypatch):
    """``ray.init`` records its arguments and answers with a dashboard URL, as Ray's does."""
    import ray
    calls = []

    def init(**kwargs):
        calls.append(kwargs)
        return SimpleNamespace(dashboard_url="127.0.0.1:8265" if kwargs.get("include_dashboard") else "")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    return calls


def test_the_flag_parses_into_the_sweep_options():
    assert options_from_args(build_parser().parse_args(["bccd_imbalance", "--dashboard"])).dashboard is True
    assert options_from_args(build_parser().parse_args(["bccd_imbalance"])).dashboard is False


def test_a_local_run_starts_the_dashboard_on_loopback_and_prints_its_url(fake_ray, monkeypatch):
    monkeypatch.setattr(ray_session, "dashboard_dependency_error", lambda: None)
    said = []
    assert ensure_ray(None, dashboard=True, warn=said.append) is True
    assert fake_ray[0]["include_dashboard"] is True and fake_ray[0]["dashboard_host"] == "127.0.0.1"
    assert said[-1] == "Ray dashboard: http://127.0.0.1:8265"


def test_without_the_flag_no_dashboard_starts(fake_ray):
    said = []
    ensure_ray(None, warn=said.append)
    assert fake_ray[0]["include_dashboard"] is False and "dashboard_host" not in fake_ray[0]
    assert not any("dashboard" in line for line in said)


def test_missing_dashboard_packages_are_one_clear_error_naming_the_install(fake_ray, monkeypatch):
    monkeypatch.setattr(ray_session, "dashboard_dependency_error", lambda: MISSING)
    with pytest.raises(DashboardError) as raised:
        ensure_ray(None, dashboard=True)
    assert isinstance(raised.value, MedsweepError)
    assert "pip install 'ray[default]'" in str(raised.value) and "aiohttp" in str(raised.value)
    assert fake_ray == []


def test_a_cluster_run_is_pointed_at_the_clusters_own_dashboard(monkeypatch):
    monkeypatch.setattr(ray_session, "dashboard_dependency_error", lambda: None)
    with pytest.raises(DashboardError, match="--address auto has its own, served by its head node"):
        check_dashboard(address="auto")


def test_the_command_fails_fast_with_exit_2_before_ray_and_the_audit(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(ray_session, "dashboard_dependency_error", lambda: MISSING)
    monkeypatch.setattr(sweeps.sweep, "ensure_ray", lambda *a, **k: pytest.fail("Ray was asked to start"))
    monkeypatch.setattr(sweeps.sweep, "prepare_sweep_data", lambda *a, **k: pytest.fail("the data audit ran"))
    assert main(["bccd_imbalance", "--smoke", "--dashboard", "--storage", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --dashboard needs Ray's dashboard packages") and "Traceback" not in err
    assert "pip install 'ray[default]'" in err
    assert not (tmp_path / "runs").exists()
