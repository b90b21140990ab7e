"""The command line: listing, errors before any Ray work, the data check."""

from __future__ import annotations

from sweeps.run import build_parser, main


def test_list_shows_each_sweep_with_trainable_grid_size_and_metric(capsys):
    assert main(["--list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    expected = {"bccd_imbalance": (" 12 ", "val_macro_f1"), "all_transfer": (" 18 ", "val_macro_f1"),
                "all_inception_nasnet": (" 48 ", "val_macro_f1"), "chestmnist_binary": (" 81 ", "val_auc"),
                "all_unet": (" 36 ", "val_dice_per_image"), "lymphoblast_maskrcnn": (" 360 ", "val_mask_map50"),
                "bccd_detection": (" 360 ", "val_map50")}
    for name, (size, metric) in expected.items():
        assert size in lines[name] and metric in lines[name], lines[name]
    assert "classification" in lines["all_transfer"] and "segmentation" in lines["all_unet"]


def test_unknown_sweep_exits_2_listing_valid_sweeps(capsys):
    assert main(["no_such_sweep"]) == 2
    from sweeps.registry import SWEEPS
    assert f"unknown sweep 'no_such_sweep'; valid sweeps: {', '.join(sorted(SWEEPS))}" in capsys.readouterr().err


def test_bad_set_fails_before_ray_starts(capsys, monkeypatch):
    import sweeps.run
    import sweeps.sweep

    def no_ray(address):
        raise AssertionError("Ray was asked to start")

    monkeypatch.setattr(sweeps.sweep, "ensure_ray", no_ray)
    assert main(["bccd_imbalance", "--smoke", "--set", "lr_typo=1"]) == 2
    assert "valid keys" in capsys.readouterr().err


def test_check_data_prints_the_audit_and_trains_nothing(capsys, shared_data_dir, tmp_path):
    assert main(["bccd_imbalance", "--check-data", "--data-dir", str(shared_data_dir),
                 "--storage", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "4,888" in out and "4,886" in out and "Dropped 2 item(s)" in out
    assert "BloodImage_00338" in out and "BloodImage_00343" in out
    # No experiment: only the audit's own folder, which the output names.
    assert [p.name for p in tmp_path.iterdir()] == ["bccd_imbalance_data_audit"]
    assert f"Audit files: {tmp_path / 'bccd_imbalance_data_audit'}" in out
    assert (tmp_path / "bccd_imbalance_data_audit" / "data_audit.txt").is_file()


def test_missing_data_is_a_clear_error(capsys, tmp_path):
    assert main(["bccd_imbalance", "--check-data", "--data-dir", str(tmp_path)]) == 2
    assert "Point --data-dir at the directory" in capsys.readouterr().err


def test_help_explains_every_option():
    text = build_parser().format_help()
    for option in ("--list", "--set", "--profile", "--smoke", "--num-samples", "--storage", "--name",
                   "--resume", "--address", "--gpus-per-trial", "--cpus-per-trial", "--seed",
                   "--data-dir", "--check-data"):
        assert option in text


def test_help_explains_the_plan_progress_and_dashboard_options():
    text = " ".join(build_parser().format_help().split())
    assert "--plan " in text and "--plan-seconds-per-epoch S" in text and "exit without training" in text
    assert "--verbose" in text and "Ray Tune's periodic status table" in text
    assert "--dashboard" in text and "pip install 'ray[default]'" in text


def test_an_unknown_class_folder_is_a_clear_error_before_any_training(capsys, tmp_path):
    from tests.synthetic_data import write_taleqani
    root = write_taleqani(tmp_path / "taleqani", per_class=2, size=32)
    (root / "Original" / "[Malignant] Pre-B").rename(root / "Original" / "Blasts")
    assert main(["all_transfer", "--check-data", "--data-dir", str(root), "--storage", str(tmp_path / "runs")]) == 2
    error = capsys.readouterr().err
    assert "'Blasts' is not a Taleqani class" in error and "Benign" in error


def test_an_internal_bug_keeps_its_traceback_and_user_errors_stay_one_line(capsys, monkeypatch):
    import pytest

    import sweeps.run
    import sweeps.sweep
    from trainables.errors import UnknownNameError

    def buggy(options):
        raise KeyError("x")

    monkeypatch.setattr(sweeps.sweep, "run_sweep", buggy)
    with pytest.raises(KeyError):
        main(["bccd_imbalance", "--smoke"])

    def user_error(options):
        raise UnknownNameError("unknown model 'effnet'; valid models: a, b")

    monkeypatch.setattr(sweeps.sweep, "run_sweep", user_error)
    assert main(["bccd_imbalance", "--smoke"]) == 2
    assert capsys.readouterr().err == "error: unknown model 'effnet'; valid models: a, b\n"


def test_strict_data_refuses_data_the_audit_had_to_shrink(capsys, shared_data_dir, tmp_path):
    assert main(["bccd_imbalance", "--check-data", "--strict-data", "--data-dir", str(shared_data_dir),
                 "--storage", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--strict-data" in err and "2 problem(s)" in err
    assert "BloodImage_00338" in err and "BloodImage_00343" in err and "zero-area box" in err
    assert list(tmp_path.iterdir()) == []
