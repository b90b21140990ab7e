"""The real Taleqani ALL copy as a researcher first meets it: ``--check-data`` of the studies
that read it prints the published counts, the manifest match and, for segmentation, the
near-empty masks by name. Skipped, saying where it looked, when the copy is absent."""

from __future__ import annotations

import pytest

from sweeps.run import main
from tests.conftest import real_taleqani_root

PUBLISHED = {"Benign": 504, "Early": 985, "Pre": 963, "Pro": 804}


@pytest.fixture(scope="module")
def real_data_dir() -> str:
    return str(real_taleqani_root().parent)


def check_data(name: str, data_dir: str, capsys, tmp_path) -> str:
    assert main([name, "--check-data", "--data-dir", data_dir, "--storage", str(tmp_path)]) == 0
    return capsys.readouterr().out


def total_row(text: str) -> list[str]:
    return next(line.split() for line in text.splitlines() if line.startswith("total "))


def test_all_transfer_check_data_prints_the_published_counts_and_the_manifest_match(real_data_dir, capsys, tmp_path):
    out = check_data("all_transfer", real_data_dir, capsys, tmp_path)
    header = next(line.split() for line in out.splitlines() if line.startswith("split "))
    counts = dict(zip(header[-5:], total_row(out)[-5:]))
    assert counts == {**{name: f"{count:,}" for name, count in PUBLISHED.items()}, "kept": "3,256"}
    assert "Manifest check: all 3256 files read match" in out


def test_all_unet_check_data_names_the_near_empty_masks(real_data_dir, capsys, tmp_path):
    out = check_data("all_unet", real_data_dir, capsys, tmp_path)
    assert "Manifest check: all 6512 files read match" in out
    assert "empty_masks=drop" in out
    assert "Pro/WBC-Malignant-Pro-010" in out
    assert total_row(out)[1] == "3,256"          # every pair listed before near-empty ones are dropped
