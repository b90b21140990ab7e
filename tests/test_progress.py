"""The one-line progress callback, fed fake Tune trials (no Ray run), on a terminal and in a
log; and the session's smoke sweep, which ran with it, still ends as before."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace

import pandas as pd
import ray.cloudpickle
from ray.tune import Callback

from sweeps.progress import SweepProgress, trial_counts, trial_epochs
from sweeps.registry import get_sweep
from sweeps.run import build_parser, options_from_args
from sweeps.space import resolve
from sweeps.storage import ExperimentLocation
from sweeps.tuner import RunSettings, run_config


def trial(trial_id: str, status: str, epoch: int | None = None) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, status=status, last_result={} if epoch is None else {"epoch": epoch})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sweep_midway() -> list[SimpleNamespace]:
    return [trial("a", "TERMINATED", 2), trial("b", "TERMINATED", 1), trial("c", "ERROR", 1),
            trial("d", "RUNNING", 1), trial("e", "PAUSED", 1), trial("f", "PENDING")]


def test_counts_split_trials_into_finished_running_and_pending_and_sum_their_epochs():
    trials = sweep_midway()
    assert trial_counts(trials) == {"finished": 3, "running": 1, "pending": 2}
    assert trial_epochs(trials) == 6
    assert trial_epochs([SimpleNamespace(trial_id="x", status="PENDING", last_result=None)]) == 0


def test_the_best_value_follows_the_mode_and_ignores_non_finite_results():
    maximise = SweepProgress(metric="val_f1", mode="max", budget=10, file=io.StringIO(), tty=False)
    minimise = SweepProgress(metric="val_loss", mode="min", budget=10, file=io.StringIO(), tty=False)
    for callback, metric in ((maximise, "val_f1"), (minimise, "val_loss")):
        for trial_id, value in (("a", 0.5), ("b", 0.7), ("c", float("nan")), ("d", 0.6), ("e", None)):
            callback.on_trial_result(0, [], trial(trial_id, "RUNNING"), {metric: value})
    assert maximise.best == (0.7, "b") and minimise.best == (0.5, "a")


def test_a_terminal_gets_one_tqdm_line_with_counts_epochs_best_and_time_left():
    out, clock = io.StringIO(), Clock()
    progress = SweepProgress(metric="val_f1", mode="max", budget=18, file=out, tty=True, columns=300, clock=clock)
    progress.setup()
    trials = sweep_midway()
    progress.on_trial_result(0, trials, trials[0], {"val_f1": 0.61234, "epoch": 2})
    clock.now += 12
    progress.on_step_end(1, trials)
    progress.on_experiment_end(trials)
    frames = [frame for frame in out.getvalue().split("\r") if frame.strip()]
    last = frames[-1].strip()
    assert re.fullmatch(r"trials 3 finished / 1 running / 2 pending \| 6/18 trial-epochs forecast \|.{10}\| "
                        r"\d\d:\d\d<(\d\d:\d\d|\?) left \| best val_f1 0\.6123 \(trial a\)", last), last
    assert "\n" not in out.getvalue().rstrip("\n")  # redrawn in place: one line, closed at the end
    assert progress.bar is None


def test_past_the_forecast_the_terminal_line_grows_its_total():
    out = io.StringIO()
    progress = SweepProgress(metric="val_f1", mode="max", budget=4, file=out, tty=True, columns=300)
    progress.on_experiment_end(sweep_midway())
    assert "| 6/6 trial-epochs forecast |" in out.getvalue().split("\r")[-1]


def test_a_log_gets_a_plain_line_every_interval_and_one_at_the_end():
    out, clock = io.StringIO(), Clock()
    progress = SweepProgress(metric="val_f1", mode="max", budget=18, file=out, tty=False, interval=30, clock=clock)
    progress.setup()
    trials = sweep_midway()
    progress.on_step_end(0, [trial("a", "PENDING")])          # first step: a line
    clock.now += 10
    progress.on_step_end(1, trials)                           # 10 s later: none
    progress.on_trial_result(1, trials, trials[1], {"val_f1": 0.5})
    clock.now += 25
    progress.on_trial_complete(2, trials, trials[1])          # 35 s after the first: a line
    clock.now += 5
    progress.on_experiment_end(trials)                        # the end: always a line
    lines = out.getvalue().splitlines()
    assert lines == [
        "[0 s] trials 0 finished / 0 running / 1 pending; 0/18 trial-epochs forecast; time left unknown; "
        "best val_f1 no result yet",
        "[35 s] trials 3 finished / 1 running / 2 pending; 6/18 trial-epochs forecast; about 1 min 10 s left; "
        "best val_f1 0.5000 (trial b)",
        "[40 s] trials 3 finished / 1 running / 2 pending; 6/18 trial-epochs forecast; about 1 min 20 s left; "
        "best val_f1 0.5000 (trial b)",
    ]
    assert "\r" not in out.getvalue()


def test_the_last_line_of_a_finished_sweep_says_all_done_not_past_the_forecast():
    out = io.StringIO()
    progress = SweepProgress(metric="val_f1", mode="max", budget=2, file=out, tty=False, clock=Clock())
    finished = [trial("a", "TERMINATED", 2), trial("b", "TERMINATED", 2)]
    progress.on_experiment_end(finished)
    assert "4/2 trial-epochs forecast; all done;" in out.getvalue()


def test_without_a_forced_mode_the_stream_decides_and_defaults_to_stdout(capsys):
    assert SweepProgress(metric="m", mode="max", budget=1, file=io.StringIO()).tty is False
    progress = SweepProgress(metric="m", mode="max", budget=1)
    progress.on_experiment_end([trial("a", "TERMINATED", 1)])
    assert "1/1 trial-epochs forecast" in capsys.readouterr().out


def test_the_callback_pickles_without_its_stream_or_bar_as_tune_saves_it():
    progress = SweepProgress(metric="val_f1", mode="max", budget=4, file=io.StringIO(), tty=True)
    progress.on_step_end(0, sweep_midway())
    assert progress.bar is not None and isinstance(progress, Callback)
    restored = ray.cloudpickle.loads(ray.cloudpickle.dumps(progress))
    assert restored.bar is None and restored.file is None and restored.budget == 4


def test_the_progress_line_replaces_rays_table_unless_verbose(tmp_path):
    resolved = resolve(get_sweep("bccd_imbalance"), profile="cpu", smoke=True)
    location = ExperimentLocation(str(tmp_path), "experiment")
    assert run_config(resolved, location, RunSettings(ray_table=False)).verbose == 0
    assert run_config(resolved, location, RunSettings()).verbose == 1
    assert options_from_args(build_parser().parse_args(["bccd_imbalance", "--verbose"])).verbose is True


def test_the_session_smoke_sweep_with_the_progress_line_ends_as_before(smoke_sweep):
    """The smoke sweep ran with the progress callback (Tune pickled it into the experiment):
    its summary keeps its columns and rows, and every trial ended in a known way."""
    assert smoke_sweep.exit_code == 0
    summary = pd.read_csv(smoke_sweep.experiment_dir / "summary.csv")
    assert list(summary.columns) == ["trial_id", "weighted_loss", "oversampling", "lr", "status", "stop_reason",
                                     "epochs", "best_val_macro_f1", "detail"]
    assert len(summary) == 12 and set(summary["status"]) == {"TERMINATED"}
    assert 12 <= summary["epochs"].sum() <= 24


def reported(trials: list, index: int, epoch: int, progress: SweepProgress) -> None:
    """A result of ``epoch`` for ``trials[index]``, as Tune delivers it: the callback first, then
    the result stored on the trial."""
    progress.on_trial_result(0, trials, trials[index], {"val_f1": 0.5, "epoch": epoch})
    trials[index].last_result = {"epoch": epoch}


def test_after_a_resume_the_pace_counts_only_the_epochs_trained_since_the_restart():
    """Issue #19 6a: 14 epochs were trained before the restart; since it, 4 in 60 s (15 s each),
    so the 22 trial-epochs the forecast still holds take 5 min 30 s, not 60 s / 18 × 22 = 73 s."""
    out, clock = io.StringIO(), Clock()
    progress = SweepProgress(metric="val_f1", mode="max", budget=40, file=out, tty=False, interval=0, clock=clock)
    progress.setup(total_num_samples=3)
    trials = [trial("a", "TERMINATED", 10), trial("b", "RUNNING", 4), trial("c", "PENDING")]
    progress.on_step_end(0, trials)                  # the restored experiment's first step
    clock.now += 60
    reported(trials, 1, 5, progress)
    reported(trials, 1, 6, progress)
    trials[2].status = "RUNNING"
    reported(trials, 2, 1, progress)
    reported(trials, 2, 2, progress)
    progress.on_step_end(1, trials)
    assert out.getvalue().splitlines()[-1].startswith(
        "[1 min 00 s] trials 1 finished / 2 running / 0 pending; 18/40 trial-epochs forecast; about 5 min 30 s left;")


def test_after_a_resume_the_terminal_line_paces_from_the_epochs_before_it():
    progress = SweepProgress(metric="val_f1", mode="max", budget=40, file=io.StringIO(), tty=True, columns=300)
    progress.setup()
    trials = [trial("a", "TERMINATED", 10), trial("b", "RUNNING", 4)]
    progress.on_step_end(0, trials)
    reported(trials, 1, 5, progress)
    progress.on_step_end(1, trials)
    # tqdm's pace is (n - initial) / elapsed: the 14 epochs from before the restart take no time.
    assert (progress.bar.n, progress.bar.initial) == (15, 14)


def test_a_searcher_creating_trials_one_at_a_time_is_not_all_done_mid_run():
    """Issue #19 6b: under --search optuna Tune creates a trial at a time, keeping one pending;
    when every trial created so far has finished before the searcher's next one is created (a
    trial that fails at start, or ends in the step the one before it did), 2 of the 3 trials
    are still to come: neither all done nor interrupted."""
    out = io.StringIO()
    progress = SweepProgress(metric="val_f1", mode="max", budget=6, file=out, tty=False, interval=0, clock=Clock())
    progress.setup(total_num_samples=3)                  # Tune's count: the searcher's num_samples
    progress.on_step_end(0, [trial("a", "RUNNING", 1)])
    progress.on_trial_complete(1, [trial("a", "TERMINATED", 2)], trial("a", "TERMINATED", 2))
    mid_run = out.getvalue().splitlines()[-1]
    assert mid_run.startswith("[0 s] trials 1 finished / 0 running / 2 pending; 2/6 trial-epochs forecast; ")
    assert "all done" not in mid_run and "interrupted" not in mid_run
    finished = [trial(name, "TERMINATED", 2) for name in "abc"]
    progress.on_step_end(2, finished)
    progress.on_experiment_end(finished)
    assert "6/6 trial-epochs forecast; all done;" in out.getvalue().splitlines()[-1]


def test_a_searcher_interrupted_before_creating_every_trial_counts_those_it_never_created():
    out = io.StringIO()
    progress = SweepProgress(metric="val_f1", mode="max", budget=6, file=out, tty=False, clock=Clock())
    progress.setup(total_num_samples=3)
    progress.on_step_end(0, [trial("a", "TERMINATED", 2), trial("b", "RUNNING", 1)])
    progress.on_experiment_end([trial("a", "TERMINATED", 2), trial("b", "TERMINATED", 1)])  # Ctrl-C
    assert "interrupted: 2 trial(s) did not finish" in out.getvalue()


def test_trials_a_searcher_has_yet_to_create_count_as_pending():
    assert trial_counts([trial("a", "RUNNING", 1)], total=4) == {"finished": 0, "running": 1, "pending": 3}
