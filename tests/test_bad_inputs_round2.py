"""Every bad input a clean, early error, second round (issue 20): exit 2 with one ``error:`` line
naming the flag, file or value and the fix; where the promise is "before Ray", Ray was never
asked to start and no experiment folder was left."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import analysis.study_report
import sweeps.data
import sweeps.run
import sweeps.storage
import sweeps.sweep
from analysis.report import main as report_main
from sweeps.data import DecodedSizeError, check_decoded_size
from sweeps.export_wandb import main as export_main
from sweeps.plan import Capacity, Forecast, Timing, size_warning
from sweeps.progress import SweepProgress
from sweeps.registry import get_sweep
from sweeps.run import main
from sweeps.space import resolve
from sweeps.storage import ExperimentLocation, StorageError, check_cloud_storage, discard_unstarted
from sweeps.sweep import SweepInterrupted, SweepOptions, interrupted_message
from tests.synthetic_data import write_taleqani
from tests.synthetic_experiment import make_experiment, trial
from trainables.checkpoints import META_FILE, STATE_FILE, UnsafeCheckpointError, read_state
from trainables.errors import MedsweepError
from trainables.registry import fetch_model_weights

REPO = Path(__file__).resolve().parents[1]


class Hostile:
    """Unpickling this would run a shell command."""

    def __reduce__(self):
        return (os.system, ("echo hostile",))


@pytest.fixture
def before_ray(monkeypatch):
    """Starting Ray fails the test; at its end Ray is as it was (no instance was started)."""
    import ray
    was_up = ray.is_initialized()
    monkeypatch.setattr(sweeps.sweep, "ensure_ray", lambda *a, **k: pytest.fail("Ray was asked to start"))
    yield
    assert ray.is_initialized() == was_up


@pytest.fixture
def no_audit(monkeypatch):
    """Decoding the data fails the test."""
    monkeypatch.setattr(sweeps.sweep, "prepare_sweep_data", lambda *a, **k: pytest.fail("the data audit ran"))


@pytest.fixture(scope="module")
def taleqani(tmp_path_factory) -> Path:
    """A small generated Taleqani tree with all four classes."""
    return write_taleqani(tmp_path_factory.mktemp("taleqani") / "ALL_Taleqani", per_class=6, size=48, seed=3).parent


def one_error(capsys) -> str:
    """The single line the command wrote to stderr (any other stderr line fails the test)."""
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def refused(args: list[str], capsys, storage: Path) -> str:
    """Run ``sweeps.run`` with ``args``; it must exit 2 with one line, leaving ``storage`` empty."""
    started = time.perf_counter()
    assert main([*args, "--storage", str(storage)]) == 2
    assert time.perf_counter() - started < 10
    assert not storage.exists() or list(storage.iterdir()) == []
    return one_error(capsys)


# 1 ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [[], ["--plan"]])
def test_zero_cpus_per_trial_is_refused_before_ray(extra, before_ray, no_audit, capsys, tmp_path):
    line = refused(["bccd_imbalance", "--smoke", "--cpus-per-trial", "0", *extra], capsys, tmp_path / "runs")
    assert line.startswith("error: --cpus-per-trial 0.0: must be above 0") and "0.5" in line


# 2 ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("url, says", [
    ("sqlite:////nonexistent_dir/x.db", "the folder /nonexistent_dir of its SQLite file does not exist"),
    ("notaurl", "not a database URL"),
])
def test_an_optuna_storage_optuna_cannot_open_is_refused_before_ray(url, says, before_ray, no_audit, capsys,
                                                                     tmp_path):
    line = refused(["bccd_imbalance", "--smoke", "--search", "optuna", "--optuna-storage", url], capsys,
                   tmp_path / "runs")
    assert line.startswith(f"error: --optuna-storage {url}: {says}") and "sqlite:///optuna.db" in line


def test_an_optuna_storage_without_optuna_search_is_refused(before_ray, capsys, tmp_path):
    line = refused(["bccd_imbalance", "--smoke", "--optuna-storage", "sqlite:///x.db"], capsys, tmp_path / "runs")
    assert "add --search optuna or drop --optuna-storage" in line


def test_a_failed_start_leaves_no_folder_behind(tmp_path):
    location = ExperimentLocation(str(tmp_path), "started")
    location.write_text("sweep.json", "{}")
    assert discard_unstarted(location) and not (tmp_path / "started").exists()
    location.write_text("tuner.pkl", "")
    assert not discard_unstarted(location) and (tmp_path / "started" / "tuner.pkl").is_file()


# 3 ----------------------------------------------------------------------------------------

def test_a_binary_set_file_is_refused(before_ray, no_audit, capsys, tmp_path):
    line = refused(["bccd_imbalance", "--smoke", "--set-file", "/bin/ls"], capsys, tmp_path / "runs")
    assert line == ("error: --set-file /bin/ls: not a text file (not UTF-8); give a JSON or YAML mapping of "
                    "KEY: VALUE")


def test_a_bad_key_or_value_in_a_set_file_names_the_file(before_ray, no_audit, capsys, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("nosuchkey: 1\n")
    line = refused(["bccd_imbalance", "--smoke", "--set-file", str(params)], capsys, tmp_path / "runs")
    assert line.startswith(f"error: --set-file {params}: nosuchkey: unknown key; valid keys:")
    params.write_text("lr: abc\n")
    line = refused(["bccd_imbalance", "--smoke", "--set-file", str(params)], capsys, tmp_path / "runs")
    assert line.startswith(f'error: --set-file {params}: lr="abc": config key \'lr\' must be float')


# 4 ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("target, says", [("missing/sweep.yaml", "the folder {folder} does not exist"),
                                          ("", "is a directory")])
def test_export_to_a_missing_folder_or_a_directory_exits_2(target, says, capsys, tmp_path):
    out = tmp_path / target if target else tmp_path
    assert export_main(["bccd_imbalance", "--out", str(out)]) == 2
    line = one_error(capsys)
    assert line.startswith(f"error: --out {out}: {says.format(folder=out.parent)}") and "standard output" in line


# 5 ----------------------------------------------------------------------------------------

def test_an_unknown_storage_scheme_is_refused_before_ray(before_ray, no_audit, capsys, tmp_path):
    assert main(["bccd_imbalance", "--smoke", "--storage", "ftp://host/runs"]) == 2
    assert one_error(capsys) == ("error: --storage ftp://host/runs: unknown scheme ftp://; use a local or NFS "
                                 "directory, s3://BUCKET/PATH or gs://BUCKET/PATH")


def test_an_unreachable_bucket_is_refused_before_ray(before_ray, no_audit, capsys, monkeypatch):
    def unreachable(uri):
        raise OSError("When resolving region for bucket 'no-such-bucket': AWS Error NETWORK_CONNECTION\nmore")

    monkeypatch.setattr(sweeps.storage, "pafs", SimpleNamespace(FileSystem=SimpleNamespace(from_uri=unreachable)))
    assert main(["bccd_imbalance", "--smoke", "--storage", "s3://no-such-bucket/runs"]) == 2
    line = one_error(capsys)
    assert line.startswith("error: --storage s3://no-such-bucket/runs: cannot be reached (When resolving region")
    assert line.endswith("or pass --storage a local directory")


def test_a_bucket_that_does_not_answer_is_given_up_on(monkeypatch):
    slow = SimpleNamespace(FileSystem=SimpleNamespace(from_uri=lambda uri: time.sleep(30)))
    monkeypatch.setattr(sweeps.storage, "pafs", slow)
    started = time.perf_counter()
    with pytest.raises(StorageError, match=r"--storage gs://slow/runs: no answer within 0 s"):
        check_cloud_storage("gs://slow/runs", timeout=0.3)
    assert time.perf_counter() - started < 5


# 6 ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--seed", "-1"], "--seed -1: must be a whole number of at least 0"),
    (["--seed", str(2**32)], f"--seed {2**32}: must be at most {2**32 - 1}"),
    (["--set", "seed=-1"], "--set seed=-1: config key 'seed' must be a whole number from 0 to"),
])
def test_a_seed_numpy_cannot_take_is_refused_before_ray(args, message, before_ray, no_audit, capsys, tmp_path):
    assert refused(["bccd_imbalance", "--smoke", *args], capsys, tmp_path / "runs").startswith(f"error: {message}")


# 7 ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["efficientnet_b0", "vgg16_frozen"])
def test_a_pretrained_path_that_is_not_weights_is_one_line(model):
    with pytest.raises(MedsweepError) as caught:
        fetch_model_weights({"model": model, "pretrained_path": "/etc/passwd"})
    message = str(caught.value)
    assert "/etc/passwd" in message and "IndexError" in message and "pretrained=false" in message
    assert "\n" not in message


@pytest.mark.parametrize("model", ["efficientnet_b0", "vgg16_frozen"])
def test_a_hostile_pretrained_path_gets_the_refusal_a_hostile_state_file_gets(model, tmp_path):
    torch.save({"model": Hostile()}, tmp_path / STATE_FILE)
    torch.save({"weights": Hostile()}, tmp_path / "weights.pth")
    with pytest.raises(UnsafeCheckpointError) as state:
        read_state(tmp_path / STATE_FILE)
    with pytest.raises(UnsafeCheckpointError) as weights:
        fetch_model_weights({"model": model, "pretrained_path": str(tmp_path / "weights.pth")})
    common = ": it holds objects other than tensors and plain data (numbers, strings, lists, dicts), namely "
    assert str(state.value).startswith(f"refused to load checkpoint {tmp_path / STATE_FILE}{common}")
    assert str(weights.value).startswith(f"refused to load pretrained_path {tmp_path / 'weights.pth'}{common}")
    assert "\n" not in str(weights.value)


def test_a_pretrained_path_that_is_not_weights_stops_the_sweep_before_ray(before_ray, taleqani, capsys, tmp_path):
    line = refused(["all_transfer", "--smoke", "--data-dir", str(taleqani), "--set", "model=vgg16_frozen",
                    "--set", "pretrained_path=/etc/passwd"], capsys, tmp_path / "runs")
    assert line.startswith("error: could not read pretrained_path /etc/passwd: the file is truncated, corrupt")


# 8 ----------------------------------------------------------------------------------------

@pytest.fixture
def experiment(tmp_path) -> Path:
    """A finished smoke experiment of bccd_imbalance whose checkpoints hold no weights."""
    return make_experiment(tmp_path / "exp", [trial("t1", [0.5, 0.6]), trial("t2", [0.4, 0.5], lr=1e-4)])


def test_a_report_output_that_cannot_be_written_stops_before_the_evaluation(experiment, capsys, monkeypatch):
    monkeypatch.setattr(analysis.study_report, "confirm_on_test", lambda *a, **k: pytest.fail("the evaluation ran"))
    assert report_main([str(experiment), "--out", "/proc/nope"]) == 2
    line = one_error(capsys)
    assert line.startswith("error: --out /proc/nope: cannot create /proc/nope (") and "pass --out a folder" in line


@pytest.mark.parametrize("args, message", [
    (["--seeds", "-1"], "--seeds -1: must be a whole number of at least 0"),
    (["--top-k", "0"], "--top-k 0: must be a whole number of at least 1"),
    (["--bootstrap", "0"], "--bootstrap 0: must be a whole number of at least 1"),
    (["--confidence", "1.5"], "--confidence 1.5: must lie between 0 and 1"),
])
def test_report_options_out_of_range_name_their_value(args, message, experiment, capsys):
    assert report_main([str(experiment), *args]) == 2
    assert one_error(capsys).startswith(f"error: {message}")


def test_a_report_where_no_candidate_loads_says_so_and_exits_2(experiment, shared_data_dir, capsys):
    assert report_main([str(experiment), "--seeds", "0", "--data-dir", str(shared_data_dir)]) == 2
    captured = capsys.readouterr()
    warnings = [line for line in captured.out.splitlines() if line.startswith("warning: not confirmed: ")]
    assert len(warnings) == 2 and all("could not predict" in line for line in warnings)
    errors = [line for line in captured.err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: no candidate of exp could be evaluated on the test split")
    assert (experiment / "report" / "report.md").is_file()


# 9 ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [["--check-data"], []])
def test_an_image_size_that_would_not_fit_in_memory_is_refused_before_decoding(extra, before_ray, no_audit, capsys,
                                                                                 tmp_path, monkeypatch):
    monkeypatch.setattr(sweeps.data, "machine_memory_bytes", lambda: 128 * 10**9)
    line = refused(["bccd_imbalance", "--smoke", "--set", "image_size=2240", *extra], capsys, tmp_path / "runs")
    assert line.startswith("error: image_size=2240: decoding bccd at 2240×2240 pixels takes about 73.5 GB, more "
                           "than 50% of this machine's 128.0 GB of memory")
    assert "--allow-large-images" in line


def test_the_decoded_size_bound_follows_the_memory_and_the_flag():
    resolved = resolve(get_sweep("bccd_imbalance"), profile="cpu", smoke=True, overrides=("image_size=224",))
    check_decoded_size(resolved, allowed=False, memory=64 * 10**9)  # 0.7 GB
    with pytest.raises(DecodedSizeError, match=r"about 0\.7 GB, more than 50% of this machine's 1\.0 GB"):
        check_decoded_size(resolved, allowed=False, memory=10**9)
    check_decoded_size(resolved, allowed=True, memory=10**9)
    options = sweeps.run.options_from_args(sweeps.run.build_parser().parse_args(["x", "--allow-large-images"]))
    assert options.allow_large_images


# 10 ---------------------------------------------------------------------------------------

def wait_until_loading(process: subprocess.Popen, library: str = "libtorch", timeout: float = 60) -> None:
    """Return once ``process`` has mapped ``library`` (it is then loading the command's modules,
    which takes seconds more)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if library in Path(f"/proc/{process.pid}/maps").read_text():
            return
        time.sleep(0.02)
    pytest.fail(f"the command never loaded {library}")


def test_ctrl_c_while_the_modules_load_exits_130_with_one_line():
    # --help no longer loads PyTorch (tests/test_cli_startup.py); a sweep's --check-data does.
    process = subprocess.Popen([sys.executable, "-m", "sweeps.run", "bccd_imbalance", "--check-data"], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until_loading(process)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, (out, err)
    assert "Traceback" not in err and err.strip() == "Interrupted while starting; nothing was run."


def test_ctrl_c_before_any_trial_says_there_is_nothing_to_resume(monkeypatch, capsys, tmp_path):
    def interrupted(options):
        raise KeyboardInterrupt

    monkeypatch.setattr(sweeps.sweep, "run_sweep", interrupted)
    assert main(["bccd_imbalance", "--plan", "--storage", str(tmp_path)]) == 130
    assert capsys.readouterr().err.strip() == ("Interrupted before any trial started; no experiment was written, "
                                               "so there is nothing to resume.")


def test_ctrl_c_after_tune_saved_its_state_names_the_storage_and_the_experiment(tmp_path):
    options = SweepOptions(name="bccd_imbalance", storage=str(tmp_path / "runs"))
    message = interrupted_message(options, SweepInterrupted(ExperimentLocation(options.storage, "exp-1")))
    assert message == (f"Interrupted. Continue with: python -m sweeps.run bccd_imbalance --resume --name exp-1 "
                       f"--storage {tmp_path / 'runs'}")


def test_the_progress_line_says_interrupted_not_all_done_after_ctrl_c():
    out = io.StringIO()
    progress = SweepProgress(metric="val_f1", mode="max", budget=8, file=out, tty=False)
    progress.setup()

    def trials(*states):
        return [SimpleNamespace(trial_id=str(i), status=s, last_result={"epoch": 1}) for i, s in enumerate(states)]

    progress.on_step_end(1, trials("TERMINATED", "RUNNING", "PENDING"))
    progress.on_experiment_end(trials("TERMINATED", "TERMINATED", "TERMINATED"))  # Tune stops them all
    assert "interrupted: 2 trial(s) did not finish" in out.getvalue() and "all done" not in out.getvalue()


# 11 ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def one_class(tmp_path_factory) -> Path:
    """A generated Taleqani tree whose Original/ holds one class folder."""
    root = tmp_path_factory.mktemp("one-class")
    write_taleqani(root / "ALL_Taleqani", per_class=8, size=48, classes=("Benign",))
    return root


@pytest.mark.parametrize("extra", [["--check-data"], ["--strict-data"]])
def test_one_class_data_is_an_error_before_ray(extra, one_class, before_ray, capsys, tmp_path):
    assert main(["all_transfer", "--smoke", "--data-dir", str(one_class), "--storage", str(tmp_path / "runs"),
                 *extra]) == 2
    line = one_error(capsys)
    assert line.startswith("error: taleqani loading_option 1: the train split holds ") and "of 1 class(es)" in line
    assert "needs at least two" in line and "--data-dir" in line
    assert not (tmp_path / "runs").exists()


# 12 ---------------------------------------------------------------------------------------

def test_group_leakage_on_fixed_splits_names_the_set_before_the_audit(before_ray, no_audit, capsys, tmp_path):
    line = refused(["bccd_imbalance", "--smoke", "--set", "leakage=group"], capsys, tmp_path / "runs")
    assert line.startswith("error: --set leakage=group: data setting 'leakage' cannot be 'group' for bccd")
    assert line.endswith("use warn, drop or fail")


@pytest.mark.parametrize("folder", ["empty", "nonexistent"])
def test_missing_data_is_an_error_before_ray(folder, before_ray, capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    line = refused(["bccd_imbalance", "--smoke", "--data-dir", str(tmp_path / folder)], capsys, tmp_path / "runs")
    assert line.startswith(f"error: --data-dir {tmp_path / folder} has no BCCD_Dataset/")


def test_offline_pretrained_weights_fail_at_once_before_ray(before_ray, taleqani, capsys, tmp_path, monkeypatch):
    from huggingface_hub import constants

    import trainables.models.hub as hub
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=hub.HUB_PROBE_SECONDS: False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    line = refused(["all_transfer", "--smoke", "--data-dir", str(taleqani), "--set", "model=efficientnet_b0",
                    "--set", "pretrained=true"], capsys, tmp_path / "runs")
    assert line.startswith("error: could not load ImageNet weights for efficientnet_b0")
    assert "--set pretrained_path=" in line and "--set pretrained=false" in line


def test_a_missing_pretrained_path_is_an_error_before_the_audit(before_ray, no_audit, capsys, tmp_path):
    line = refused(["bccd_imbalance", "--smoke", "--set", f"pretrained_path={tmp_path / 'none.pth'}"], capsys,
                   tmp_path / "runs")
    assert line.startswith(f"error: pretrained_path {tmp_path / 'none.pth'}: no such file")


def test_a_giant_num_samples_is_warned_about_in_the_forecast():
    def forecast(trials: int, timing: Timing | None) -> Forecast:
        return Forecast(trials=trials, max_epochs=2, rungs=(1.0,), reduction_factor=2, cpus_per_trial=1,
                        gpus_per_trial=0, capacity=Capacity(trials_at_once=2, by_accelerator=(), nodes="1 node"),
                        timing=timing)

    warning = size_warning(forecast(1_200_000, Timing(1.0, 0.0, "test")), num_samples=100_000)
    assert warning.startswith("warning: --num-samples 100000 makes 1,200,000 trial(s), about ")
    assert "check --num-samples" in warning
    assert size_warning(forecast(12, None), num_samples=None) is None


# 13 ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["--set", "lr=1e-3"], ["--search", "optuna"], ["--num-samples", "3"]])
def test_resume_refuses_settings_it_would_ignore(args, before_ray, capsys, tmp_path):
    line = refused(["bccd_imbalance", "--resume", *args], capsys, tmp_path / "runs")
    assert line.startswith("error: --resume continues an experiment with the settings it started with, so ")
    assert args[0].split("/")[0] in line


@pytest.mark.parametrize("name", ["../escaped", "a/b", ".."])
def test_a_name_outside_the_storage_is_refused(name, before_ray, no_audit, capsys, tmp_path):
    line = refused(["bccd_imbalance", "--smoke", "--name", name], capsys, tmp_path / "runs")
    assert line.startswith(f"error: --name {name!r}: must be a single folder name inside --storage")
    assert not (tmp_path / "escaped").exists()


def test_a_folder_left_by_a_failed_start_is_not_a_loop(before_ray, no_audit, capsys, tmp_path):
    storage = tmp_path / "runs"
    (storage / "left").mkdir(parents=True)
    (storage / "left" / "sweep.json").write_text("{}")
    assert main(["bccd_imbalance", "--smoke", "--name", "left", "--storage", str(storage)]) == 2
    assert "holds no Tune state" in (line := one_error(capsys)) and "remove that folder" in line
    assert main(["bccd_imbalance", "--resume", "--name", "left", "--storage", str(storage)]) == 2
    line = one_error(capsys)
    assert "holds no Tune state" in line and "remove that folder and start a new run" in line
    assert "use --resume" not in line


def test_a_checkpoint_naming_an_unknown_model_is_said_on_the_console(experiment, shared_data_dir, capsys):
    config = {"model": "no_such_model", "lr": 1e-3, "batch_size": 8, "eval_batch_size": 8, "max_epochs": 2}
    for checkpoint in (experiment / "t1").glob("checkpoint_*"):
        torch.save({"epoch": 2, "model": {}}, checkpoint / STATE_FILE)
        meta = json.loads((checkpoint / META_FILE).read_text())
        (checkpoint / META_FILE).write_text(json.dumps({**meta, "class_names": ["RBC", "WBC", "Platelets"],
                                                        "mean": [0.5] * 3, "std": [0.2] * 3, "config": config}))
    report_main([str(experiment), "--seeds", "0", "--data-dir", str(shared_data_dir)])
    out = capsys.readouterr().out
    assert any(line.startswith("warning: not confirmed: t1: ") and "no_such_model" in line
               for line in out.splitlines()), out
