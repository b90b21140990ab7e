"""The experiment directory is a contract (issue #19, points 2 and 4): it records the exact
split it trained on (``splits.json``), a resume or a report refuses data that differs from that
record unless told to go on (and then the report says what changed), the dirty flag sees
untracked source files, no two runs share a directory and no two reports interleave a cache file."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading

import numpy as np
import pytest

import analysis.rerun
from analysis.report import build_parser, options_from_args
from analysis.rerun import PredictionCache
from analysis.study_report import ReportOptions, write_report
from sweeps import environment, storage
from sweeps.data import SweepData
from sweeps.environment import (
    DataChangedError,
    SplitsFileError,
    capture_environment,
    check_data_unchanged,
    record_data_changes,
    recorded_data_changes,
    write_splits,
)
from sweeps.storage import ExperimentLocation, create_experiment
from tests.synthetic_experiment import make_experiment, trial
from trainables.datasets.audit import DataAudit
from trainables.datasets.base import ClassificationData, SplitArrays
from trainables.errors import ExperimentExistsError

CLASSES = ("RBC", "WBC", "Platelets")
TRAIN = ("BloodImage_00001", "BloodImage_00002", "BloodImage_00003", "BloodImage_00004")
VAL = ("BloodImage_00010", "BloodImage_00011", "BloodImage_00012")
TEST = ("BloodImage_00020", "BloodImage_00021", "BloodImage_00022")


def split(ids: tuple[str, ...]) -> SplitArrays:
    """Two patches per image id, as BCCD's patches share their image's source."""
    sources = np.repeat(np.asarray(ids, dtype=str), 2)
    return SplitArrays(np.zeros((len(sources), 8, 8, 3), np.uint8), np.arange(len(sources)) % 3, sources)


def sweep_data(*, fingerprint: str = "fp-1", val: tuple[str, ...] = VAL, test: bool = False) -> SweepData:
    """Prepared data as the sweep (train and val) or the report (with ``test``) reads it."""
    splits = {"train": split(TRAIN), "val": split(val)} | ({"test": split(TEST)} if test else {})
    data = ClassificationData(name="bccd", class_names=CLASSES, splits=splits, fingerprint=fingerprint)
    return SweepData(axis=None, variants={None: data}, audits={None: DataAudit("bccd", "/data/BCCD", CLASSES)})


def recorded_experiment(directory, data: SweepData, *, splits: bool = True):
    """A synthetic experiment whose sweep.json records ``data``'s environment, and (when
    ``splits``) whose splits.json lists its splits, as a run writes them."""
    make_experiment(directory, [trial("t_only", [0.6])])
    saved = json.loads((directory / "sweep.json").read_text())
    saved["environment"] = capture_environment(data=data, data_dir=None)
    (directory / "sweep.json").write_text(json.dumps(saved))
    if splits:
        write_splits(ExperimentLocation(str(directory.parent), directory.name), data)
    return directory


# Point 2: splits.json and the data check.

def test_splits_json_records_the_item_ids_of_every_split(tmp_path):
    location = ExperimentLocation(str(tmp_path), "exp")
    write_splits(location, sweep_data())
    written = json.loads(location.read_text("splits.json"))
    assert written["dataset"] == "bccd"
    assert written["variants"] == {"None": {"train": list(TRAIN), "val": list(VAL)}}


def test_unchanged_data_passes_and_says_what_was_compared(tmp_path):
    directory = recorded_experiment(tmp_path / "exp", sweep_data())
    check = check_data_unchanged(directory, sweep_data(test=True), allow_change=False)
    assert check.changes == ()
    assert "split lists of splits.json" in check.compared


def test_a_changed_split_is_refused_naming_what_was_removed_and_added(tmp_path):
    directory = recorded_experiment(tmp_path / "exp", sweep_data())
    today = sweep_data(val=("BloodImage_00011", "BloodImage_00030", "BloodImage_00031"))
    with pytest.raises(DataChangedError) as refused:
        check_data_unchanged(directory, today, allow_change=False)
    message = str(refused.value)
    assert ("split val: 2 item(s) removed (first: BloodImage_00010), 2 item(s) added (first: BloodImage_00030)"
            in message)
    assert "split train" not in message
    assert "--allow-data-change to go on anyway" in message and str(directory) in message


def test_a_changed_fingerprint_is_refused(tmp_path):
    directory = recorded_experiment(tmp_path / "exp", sweep_data())
    with pytest.raises(DataChangedError, match="fingerprint differs: fp-1 recorded, fp-2 today"):
        check_data_unchanged(directory, sweep_data(fingerprint="fp-2"), allow_change=False)


def test_allowed_changes_are_returned_and_a_resume_records_them(tmp_path):
    directory = recorded_experiment(tmp_path / "exp", sweep_data())
    location = ExperimentLocation(str(tmp_path), "exp")
    check = check_data_unchanged(location, sweep_data(fingerprint="fp-2"), allow_change=True)
    assert len(check.changes) == 1 and "fingerprint differs" in check.changes[0]
    record_data_changes(location, check, doing="resume")
    record_data_changes(location, check_data_unchanged(location, sweep_data(), allow_change=False), doing="resume")
    recorded = recorded_data_changes(directory)
    assert [entry["doing"] for entry in recorded] == ["resume"]
    assert recorded[0]["changes"] == list(check.changes)


def test_an_experiment_without_splits_json_is_compared_on_its_fingerprint_only(tmp_path):
    directory = recorded_experiment(tmp_path / "exp", sweep_data(), splits=False)
    other_val = sweep_data(val=("BloodImage_00099",))
    check = check_data_unchanged(directory, other_val, allow_change=False)
    assert check.changes == () and "fingerprint only: no splits.json" in check.compared
    with pytest.raises(DataChangedError, match="fingerprint differs"):
        check_data_unchanged(directory, sweep_data(fingerprint="fp-2"), allow_change=False)


def test_the_report_refuses_changed_data_unless_allowed_and_then_records_it(tmp_path, monkeypatch):
    directory = recorded_experiment(tmp_path / "exp", sweep_data())
    record_data_changes(ExperimentLocation(str(tmp_path), "exp"),
                        environment.DataCheck("test", ("split train: 1 item(s) added (first: x)",)), doing="resume")
    today = sweep_data(val=VAL[:2], test=True)
    monkeypatch.setattr(analysis.rerun, "prepare_sweep_data", lambda *args, **keywords: today)
    with pytest.raises(DataChangedError, match="split val: 1 item"):
        write_report(ReportOptions(str(directory), seeds=0, top_k=1), echo=lambda _: None)
    lines: list[str] = []
    options = options_from_args(build_parser().parse_args([str(directory), "--seeds", "0", "--top-k", "1",
                                                           "--allow-data-change"]))
    try:
        write_report(options, echo=lines.append)
    except analysis.study_report.NothingConfirmedError:     # the synthetic checkpoints hold no weights
        pass
    text = (directory / "report" / "report.md").read_text()
    assert "the report went on because --allow-data-change was given" in text
    assert "split val: 1 item(s) removed (first: BloodImage_00012)" in text
    assert "The resume of" in text and "split train: 1 item(s) added (first: x)" in text
    assert any("data changed since the sweep" in line for line in lines)


# Point 2: the dirty flag.

@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_dirty_flag_counts_untracked_files_that_git_does_not_ignore(tmp_path, monkeypatch):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                       check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / ".gitignore").write_text("runs/\n")
    git("add", ".gitignore")
    git("commit", "-q", "-m", "first")
    monkeypatch.setattr(environment, "REPOSITORY", tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "result.json").write_text("{}")
    assert environment.medsweep_commit()[1] is False
    (tmp_path / "new_module.py").write_text("x = 1\n")
    assert environment.medsweep_commit()[1] is True


# Point 4: one directory per run, one cache file per writer.

def test_two_runs_choosing_a_name_at_the_same_instant_get_distinct_directories(tmp_path, monkeypatch):
    monkeypatch.setattr(storage.time, "strftime", lambda *args: "20261207-120000")
    runs = 8
    barrier = threading.Barrier(runs)
    chosen: list[str] = []

    def run() -> None:
        barrier.wait()
        chosen.append(create_experiment(str(tmp_path), "bccd_imbalance", None).name)

    threads = [threading.Thread(target=run) for _ in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(chosen)) == runs
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(chosen)
    assert "bccd_imbalance_20261207-120000" in chosen


def test_the_same_name_twice_is_refused_for_the_second_run(tmp_path):
    first = create_experiment(str(tmp_path), "bccd_imbalance", "mine")
    assert first.local_dir.is_dir()
    with pytest.raises(ExperimentExistsError, match="--name mine: .* already exists"):
        create_experiment(str(tmp_path), "bccd_imbalance", "mine")
    (first.local_dir / "tuner.pkl").write_bytes(b"")
    with pytest.raises(ExperimentExistsError, match="continue it with --resume --name mine"):
        create_experiment(str(tmp_path), "bccd_imbalance", "mine")


def test_concurrent_cache_writers_leave_a_valid_file_and_no_temporary_ones(tmp_path, monkeypatch):
    """Each writer finishes writing before any renames (the barrier), the moment two reports
    writing one entry at once collided in a shared partial file."""
    writers = 4
    barrier = threading.Barrier(writers)
    real_save = np.savez_compressed
    errors: list[BaseException] = []

    def save_then_wait(file, **arrays):
        real_save(file, **arrays)
        barrier.wait()

    monkeypatch.setattr(analysis.rerun.np, "savez_compressed", save_then_wait)
    cache = PredictionCache(tmp_path / "cache", data_key="data")

    def write(value: int) -> None:
        try:
            cache.save({"kind": "retrained"}, np.full(1000, value), {"seed": value})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(value,)) for value in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    outputs, training = cache.load({"kind": "retrained"})
    assert (outputs == training["seed"]).all()
    assert [path.suffix for path in (tmp_path / "cache").iterdir()] == [".npz"]


def test_a_failed_cache_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    def fail(file, **arrays):
        raise OSError("disk full")

    monkeypatch.setattr(analysis.rerun.np, "savez_compressed", fail)
    cache = PredictionCache(tmp_path / "cache", data_key="data")
    with pytest.raises(OSError, match="disk full"):
        cache.save({"kind": "retrained"}, np.zeros(3), {})
    assert list((tmp_path / "cache").iterdir()) == []


def test_real_bccd_read_for_the_report_matches_what_the_sweep_recorded(shared_data_dir, tmp_path):
    """The report prepares train, val and test where the sweep prepared train and val: the same
    fingerprint and split lists, so an unchanged dataset passes the check."""
    from sweeps.data import prepare_sweep_data
    from tests.synthetic_experiment import FIXED

    swept = prepare_sweep_data(FIXED, data_dir=str(shared_data_dir))
    directory = recorded_experiment(tmp_path / "exp", swept)
    reread = prepare_sweep_data(FIXED, data_dir=str(shared_data_dir), splits=("train", "val", "test"))
    check = check_data_unchanged(directory, reread, allow_change=False)
    assert check.changes == () and "split lists" in check.compared
    recorded = json.loads((directory / "splits.json").read_text())["variants"]["None"]
    assert set(recorded) == {"train", "val"} and all(name.startswith("BloodImage_") for name in recorded["val"])


@pytest.mark.parametrize("text", ["{not json", '{"dataset": "bccd"}', '{"variants": {"None": ["a"]}}'])
def test_an_unreadable_splits_json_is_refused_naming_the_file_and_the_fix(tmp_path, text):
    directory = recorded_experiment(tmp_path / "exp", sweep_data())
    (directory / "splits.json").write_text(text)
    with pytest.raises(SplitsFileError, match=r"exp/splits.json: not the split lists .* remove it to compare"):
        check_data_unchanged(directory, sweep_data(), allow_change=False)


# The run path: a resume checks the data before Ray starts.

class RayWasAsked(Exception):
    """Raised where Ray would start, so a test stops there."""


def resume_against(tmp_path, monkeypatch, today: SweepData, **options):
    """``run_sweep --resume`` of a recorded experiment whose data reads as ``today``, stopped
    where Ray would start."""
    import sweeps.sweep
    from sweeps.sweep import SweepOptions, run_sweep

    directory = recorded_experiment(tmp_path / "runs" / "bccd_imbalance_recorded", sweep_data())
    (directory / "tuner.pkl").write_bytes(b"")  # Tune's state: only its presence is looked at before Ray
    monkeypatch.setattr(sweeps.sweep, "audited_data", lambda *a, **k: today)
    monkeypatch.setattr(sweeps.sweep, "check_before_ray", lambda *a, **k: None)
    monkeypatch.setattr(sweeps.sweep, "ensure_ray", lambda *a, **k: (_ for _ in ()).throw(RayWasAsked()))
    said = []
    run_sweep(SweepOptions(name="bccd_imbalance", resume=True, storage=str(tmp_path / "runs"),
                           experiment_name="bccd_imbalance_recorded", **options), echo=said.append)
    return said


def test_a_resume_on_changed_data_stops_before_ray_naming_the_change(tmp_path, monkeypatch):
    changed = sweep_data(val=VAL[:2] + ("BloodImage_00099",))
    with pytest.raises(DataChangedError, match=r"split val: 1 item\(s\) removed \(first: BloodImage_00012\)"):
        resume_against(tmp_path, monkeypatch, changed)
    with pytest.raises(RayWasAsked):
        resume_against(tmp_path / "allowed", monkeypatch, changed, allow_data_change=True)
    location = ExperimentLocation(str(tmp_path / "allowed" / "runs"), "bccd_imbalance_recorded")
    assert "BloodImage_00012" in json.dumps(recorded_data_changes(location))


def test_allow_data_change_without_resume_is_refused():
    from sweeps.sweep import SweepOptions
    from trainables.errors import SearchSpaceError

    with pytest.raises(SearchSpaceError, match="--allow-data-change .* add --resume"):
        SweepOptions(name="bccd_imbalance", allow_data_change=True)
