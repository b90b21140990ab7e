"""The progress line inside a real Ray Tune run under an Optuna searcher, which creates its
trials one at a time (issue #19 6b): Tune tells the callback the searcher's sample count at
setup, and the line says all done only once that many trials have run. (Whether the trials
created so far are ever all finished mid-run depends on Tune's timing; the unit tests in
test_progress.py build that state directly.)"""

from __future__ import annotations

import io

import pytest
from ray import tune

from sweeps.progress import SweepProgress

TRIALS = 3


@pytest.mark.e2e
def test_an_optuna_run_is_all_done_only_on_its_last_line(ray_session, tmp_path):
    from ray.tune.search.optuna import OptunaSearch

    def two_epochs(config: dict) -> None:  # defined here: Ray's workers cannot import a test module
        for epoch in (1, 2):
            tune.report({"epoch": epoch, "score": config["x"] * epoch})

    out = io.StringIO()
    progress = SweepProgress(metric="score", mode="max", budget=2 * TRIALS, file=out, tty=False, interval=0)
    tuner = tune.Tuner(
        tune.with_resources(two_epochs, {"cpu": 1}),
        param_space={"x": tune.uniform(0.0, 1.0)},
        tune_config=tune.TuneConfig(metric="score", mode="max", num_samples=TRIALS,
                                    search_alg=OptunaSearch(seed=0)),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="optuna", callbacks=[progress], verbose=0))
    assert not tuner.fit().errors
    lines = out.getvalue().splitlines()
    every_trial_run = f"trials {TRIALS} finished / 0 running / 0 pending; {2 * TRIALS}/{2 * TRIALS}"
    assert all(every_trial_run in line for line in lines if "all done" in line), lines
    assert "all done" in lines[-1] and not any("interrupted" in line for line in lines)
    assert progress.total == TRIALS  # Tune's count at setup: the searcher's num_samples
