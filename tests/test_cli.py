"""The command line: listing, errors before any Ray work, the data check."""

from __future__ import annotations

from sweeps.run import build_parser, main


def test_list_shows_each_sweep_with_trainable_grid_size_and_metric(capsys):
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "bccd_imbalance" in out and "classification" in out and " 12 " in out and "val_macro_f1" in out


def test_unknown_sweep_exits_2_listing_valid_sweeps(capsys):
    assert main(["no_such_sweep"]) == 2
    assert "unknown sweep 'no_such_sweep'; valid sweeps: all_unet, bccd_imbalance" in capsys.readouterr().err


def test_bad_set_fails_before_ray_starts(capsys):
    import ray
    assert main(["bccd_imbalance", "--smoke", "--set", "lr_typo=1"]) == 2
    assert "valid keys" in capsys.readouterr().err
    assert not ray.is_initialized()


def test_check_data_prints_the_audit_and_trains_nothing(capsys, shared_data_dir, tmp_path):
    assert main(["bccd_imbalance", "--check-data", "--data-dir", str(shared_data_dir),
                 "--storage", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "4,888" in out and "4,886" in out and "Dropped 2 item(s)" in out
    assert "BloodImage_00338" in out and "BloodImage_00343" in out
    assert list(tmp_path.iterdir()) == []


def test_missing_data_is_a_clear_error(capsys, tmp_path):
    assert main(["bccd_imbalance", "--check-data", "--data-dir", str(tmp_path)]) == 2
    assert "Point --data-dir at the directory" in capsys.readouterr().err


def test_help_explains_every_option():
    text = build_parser().format_help()
    for option in ("--list", "--set", "--profile", "--smoke", "--num-samples", "--storage", "--name",
                   "--resume", "--address", "--gpus-per-trial", "--cpus-per-trial", "--seed",
                   "--data-dir", "--check-data"):
        assert option in text
