"""The sweep arguments of a Slurm job's runs (sweeps/slurm.py): a name fixed by the job id, and
on a requeued run ``--resume`` without what the experiment fixed at its start. The job itself
runs in tests/cluster/test_slurm.py (``make test-cluster``)."""

from __future__ import annotations

import pytest

from sweeps.arguments import FIXED_AT_START, build_parser
from sweeps.slurm import driver_arguments, main
from sweeps.sweep import SweepOptions
from trainables.errors import SearchSpaceError

USER = ["bccd_imbalance", "--smoke", "--set", "lr=[0.001]", "--set=oversampling=[false]", "--storage", "STORAGE",
        "--storage-shared", "--cpus-per-trial", "1", "--wandb", "--max-failures=5"]


def arguments(tmp_path, restarts: int, *, state: bool = False, said=None) -> list[str]:
    user = [str(tmp_path / "runs") if token == "STORAGE" else token for token in USER]
    experiment = tmp_path / "runs" / "bccd_imbalance_slurm77"
    experiment.mkdir(parents=True)
    (experiment / "sweep.json").write_text("{}")
    if state:
        (experiment / "tuner.pkl").write_bytes(b"")
    return driver_arguments(user, job_id="77", restarts=restarts, echo=(said if said is not None else []).append)


def test_the_first_run_names_the_experiment_after_the_job(tmp_path):
    out = arguments(tmp_path, 0)
    assert out[-2:] == ["--name", "bccd_imbalance_slurm77"] and "--resume" not in out and "--smoke" in out


def test_a_requeued_run_resumes_without_the_flags_an_experiment_fixes(tmp_path):
    said = []
    out = arguments(tmp_path, 1, state=True, said=said)
    assert out == ["bccd_imbalance", "--storage", str(tmp_path / "runs"), "--storage-shared", "--wandb",
                   "--max-failures=5", "--name", "bccd_imbalance_slurm77", "--resume"]
    assert said == ["medsweep: restart 1: resuming experiment bccd_imbalance_slurm77"]
    SweepOptions(name="bccd_imbalance", resume=True, storage=str(tmp_path / "runs"))  # what it parses to is valid


def test_a_requeued_run_before_any_tune_state_starts_afresh(tmp_path):
    said = []
    out = arguments(tmp_path, 2, said=said)
    assert "--resume" not in out and not (tmp_path / "runs" / "bccd_imbalance_slurm77").exists()
    assert said == ["medsweep: bccd_imbalance_slurm77 stopped before Tune saved any state: starting it afresh"]


def test_what_a_resume_refuses_is_what_a_requeued_job_drops():
    dests = {action.dest for action in build_parser()._actions}
    assert set(FIXED_AT_START) <= dests
    values = {"overrides": ("lr=1",), "search": "optuna", "num_samples": 2, "seed": 1, "smoke": True,
              "profile": "cpu", "cpus_per_trial": 1.0, "gpus_per_trial": 0.5, "optuna_storage": "sqlite:///x.db"}
    assert set(values) == set(FIXED_AT_START) - {"set_file"}   # --set-file arrives as overrides
    for name, value in values.items():
        extra = {"search": "optuna"} if name == "optuna_storage" else {}
        with pytest.raises(SearchSpaceError, match="--resume continues an experiment"):
            SweepOptions(name="bccd_imbalance", resume=True, **{name: value, **extra})


def test_the_command_prints_the_arguments_nul_separated(tmp_path, capsys):
    assert main(["driver-args", "--job-id", "9", "--", "bccd_imbalance", "--storage", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split("\0") == ["bccd_imbalance", "--storage", str(tmp_path), "--name",
                                                   "bccd_imbalance_slurm9", ""]
