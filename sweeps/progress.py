"""The live progress of a sweep: one line instead of Ray Tune's wide status table.

``SweepProgress`` is a Tune callback. On a terminal it keeps one tqdm line up to date: trials
finished / running / pending, trial-epochs done against the forecast (``budget``: under ASHA,
``plan.Forecast.asha_trial_epochs``), the best value of the sweep's metric so far with its
trial, and the time left at the pace so far. When stdout is not a terminal (CI, a log file)
it prints the same as a plain line every ``interval`` seconds, and once at the end.

The pace counts only the epochs trained since this process started: after ``--resume`` the
epochs of the interrupted run are done (they count against the forecast) but took none of
this process's time. A sweep is all done when Tune's count of its trials (``setup``'s
``total_num_samples``) have finished: a searcher such as Optuna creates its trials one at a
time, so every trial created so far can be finished mid-run.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections.abc import Callable
from typing import IO

from ray.tune import Callback
from tqdm import tqdm

from sweeps.plan import duration

# Tune's trial states that mean a trial will not train again in this run.
DONE_STATES = ("TERMINATED", "ERROR")
# Seconds between plain lines when stdout is not a terminal.
PLAIN_INTERVAL_SECONDS = 30.0
# The terminal's columns and rows when it does not say (a pseudo-terminal of size 0, say).
FALLBACK_SIZE = (120, 24)


class SweepProgress(Callback):
    """Tune callback drawing the progress line on ``file`` (default: stdout as it is when the
    line is drawn); ``tty`` None asks the file whether it is a terminal, ``columns`` None the
    terminal how wide it is.

    Tune pickles its callbacks with the experiment (``--resume`` restores them), so the
    callback holds no stream or tqdm bar when pickled, and starts its clock and its count of
    epochs afresh when an experiment (re)starts (``setup``). After a resume, the best value
    counts the results reported since."""

    def __init__(self, *, metric: str, mode: str, budget: float, file: IO[str] | None = None,
                 tty: bool | None = None, columns: int | None = None, interval: float = PLAIN_INTERVAL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.metric, self.mode, self.budget = metric, mode, budget
        self.file, self.forced_tty, self.columns = file, tty, columns
        self.interval, self.clock = interval, clock
        self.started = clock()
        self.last_line = -math.inf
        self.best: tuple[float, str] | None = None
        self.bar: tqdm | None = None
        # Trials that had not finished at Tune's latest step: at the experiment's end, any left
        # means it was interrupted (Tune then reports every trial TERMINATED).
        self.unfinished = 0
        # Trials the experiment holds in all (Tune's count at ``setup``; 0 when not told).
        self.total = 0
        # Each trial's epoch at the first callback after ``setup``: what a resumed trial had
        # trained before (None until then; a trial created later starts from 0).
        self.epochs_before: dict[str, int] | None = None
        self.ended = False

    def __getstate__(self) -> dict:
        return {**self.__dict__, "bar": None, "file": None}

    @property
    def stream(self) -> IO[str]:
        return self.file if self.file is not None else sys.stdout

    @property
    def tty(self) -> bool:
        return self.stream.isatty() if self.forced_tty is None else self.forced_tty

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info) -> None:
        """The experiment starts (or resumes): time and count epochs from now, and keep Tune's
        count of the experiment's trials (grid points × samples, or a searcher's samples)."""
        self.started = self.clock()
        self.last_line = -math.inf
        self.unfinished = 0
        self.total = int(total_num_samples or 0)
        self.epochs_before = None
        self.ended = False

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        """Keep the best finite value of the metric any trial has reported, with its trial.
        Tune calls this before it stores ``result`` on the trial, so when this is the first
        callback since ``setup`` the trials still show their epochs from before."""
        self.note_epochs_before(trials)
        value = result.get(self.metric)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return
        if self.best is None or (value > self.best[0] if self.mode == "max" else value < self.best[0]):
            self.best = (float(value), trial.trial_id)

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        self.show(trials)

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        counts = trial_counts(trials)
        self.unfinished = counts["running"] + counts["pending"]
        self.show(trials)

    def on_experiment_end(self, trials: list, **info) -> None:
        """The final state, then the terminal line is closed (the summary table follows)."""
        self.ended = True
        self.show(trials, final=True)
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def show(self, trials: list, *, final: bool = False) -> None:
        """Redraw the line (tqdm limits how often it repaints), or print a plain line when
        ``interval`` has passed since the last one."""
        self.note_epochs_before(trials)
        done = trial_epochs(trials)
        if self.tty:
            bar = self.bar or self.open_bar(trials)
            bar.total = max(round(self.budget), done)
            bar.n = done
            bar.initial = done - self.epochs_here(trials)  # tqdm's pace counts from here
            interrupted = self.interrupted(trials)
            bar.set_description_str(self.counts_text(trials) + (f" ({interrupted} interrupted)" if interrupted else ""),
                                    refresh=False)
            bar.postfix = [self.best_text()]
            if final:
                bar.refresh()
            else:
                bar.update(0)  # repaints at most every tqdm mininterval
            return
        now = self.clock()
        if final or now - self.last_line >= self.interval:
            self.last_line = now
            print(f"[{duration(now - self.started)}] {self.counts_text(trials)}; {done}/{self.budget:.0f} "
                  f"trial-epochs forecast; {self.time_left(done, now, trials)}; {self.best_text()}",
                  file=self.stream, flush=True)

    def open_bar(self, trials: list) -> tqdm:
        """The terminal line, cut to the terminal's width (a longer line would wrap, and each
        redraw would add a line). The size is given to tqdm: it draws nothing on a terminal that
        reports 0 rows (a bare pseudo-terminal)."""
        size = shutil.get_terminal_size(fallback=FALLBACK_SIZE)
        self.bar = tqdm(total=max(1, round(self.budget)), file=self.stream, smoothing=0,
                        ncols=self.columns or size.columns, nrows=size.lines or FALLBACK_SIZE[1],
                        bar_format="{desc} | {n_fmt}/{total_fmt} trial-epochs forecast |{bar:10}| "
                                   "{elapsed}<{remaining} left | {postfix[0]}",
                        desc=self.counts_text(trials), postfix=[self.best_text()])
        return self.bar

    def note_epochs_before(self, trials: list) -> None:
        """At the first callback since ``setup``, each trial's epochs so far: a fresh
        experiment's trials have none yet; a resumed one's, what they trained before."""
        if self.epochs_before is None:
            self.epochs_before = {trial.trial_id: epoch_of(trial) for trial in trials}

    def epochs_here(self, trials: list) -> int:
        """Epochs the trials have reported since this process started (a trial resumed from an
        earlier checkpoint counts from there, never below 0)."""
        before = self.epochs_before or {}
        return sum(max(0, epoch_of(trial) - before.get(trial.trial_id, 0)) for trial in trials)

    def trial_total(self, trials: list) -> int:
        """Trials the experiment holds: Tune's count, or those created so far when larger."""
        return max(self.total, len(trials))

    def all_done(self, trials: list) -> bool:
        """Every trial of the experiment finished, not only every trial created so far."""
        return bool(trials) and trial_counts(trials)["finished"] == self.trial_total(trials)

    def interrupted(self, trials: list) -> int:
        """Trials cut short by a Ctrl-C, once the experiment has ended: those unfinished at
        Tune's latest step when every trial created is reported finished (Tune stops them all
        at an interrupt), plus those a searcher never created; else 0. Mid-run, every trial
        created can be finished with more to come (a searcher creates them one at a time)."""
        if not (self.ended and trials and trial_counts(trials)["finished"] == len(trials)):
            return 0
        return self.unfinished + self.trial_total(trials) - len(trials)

    def counts_text(self, trials: list) -> str:
        """``trials 3 finished / 2 running / 7 pending``; trials a searcher has yet to create
        are pending."""
        counts = trial_counts(trials, total=self.total)
        return f"trials {counts['finished']} finished / {counts['running']} running / {counts['pending']} pending"

    def best_text(self) -> str:
        """``best val_f1 0.6123 (trial 1a2b)``."""
        best = "no result yet" if self.best is None else f"{self.best[0]:.4f} (trial {self.best[1]})"
        return f"best {self.metric} {best}"

    def time_left(self, done: int, now: float, trials: list) -> str:
        """Time left for the trial-epochs the forecast still holds, at the pace of the epochs
        this process trained (``epochs_here``) in the time since it started."""
        if interrupted := self.interrupted(trials):
            return f"interrupted: {interrupted} trial(s) did not finish"
        if self.all_done(trials):
            return "all done"
        remaining = self.budget - done
        if remaining <= 0:
            return "past the forecast"
        here = self.epochs_here(trials)
        if here == 0:
            return "time left unknown"
        return f"about {duration((now - self.started) / here * remaining)} left"


def trial_counts(trials: list, *, total: int = 0) -> dict[str, int]:
    """Trials finished (ended or errored), running, and pending (anything else: waiting for
    resources, paused by the scheduler, not yet started, or, of ``total`` trials in all, not
    yet created)."""
    finished = sum(trial.status in DONE_STATES for trial in trials)
    running = sum(trial.status == "RUNNING" for trial in trials)
    return {"finished": finished, "running": running, "pending": max(total, len(trials)) - finished - running}


def trial_epochs(trials: list) -> int:
    """Epochs the trials have reported so far (each trial's latest ``epoch``)."""
    return sum(epoch_of(trial) for trial in trials)


def epoch_of(trial) -> int:
    """The latest ``epoch`` a trial reported (0 before its first result)."""
    return int((trial.last_result or {}).get("epoch", 0) or 0)
