"""``python -m sweeps.new`` and the starter study it writes (``sweeps.starter``), without Ray:
the choices it makes from a survey, that every value says why, and that the file it writes is
a valid study in every profile. The whole cycle on each format is in ``test_own_data_e2e.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sweeps.new import main, new_study
from sweeps.starter import chosen_side, starter_study, study_name
from sweeps.study_file import load_study
from trainables.datasets.survey import DatasetSurvey
from trainables.errors import MedsweepError


def survey(task: str = "classification", *, counts=None, sizes=((640, 480),) * 5, fixed=False,
           options=None) -> DatasetSurvey:
    formats = {"classification": "image_folder", "segmentation": "mask_folder", "detection": "coco"}
    default_options = {"segmentation": {"root": "/data/x", "classes": {0: "background", 255: "cell"}}}
    return DatasetSurvey(format=formats[task], task=task, root=Path("/data/x"), layout="class folders",
                         class_names=("a", "b"), counts=counts or {"all": {"a": 40, "b": 40}},
                         image_sizes=tuple(sizes), channels=3, fixed_splits=fixed,
                         options=options or default_options.get(task, {"root": "/data/x"}))


def value_lines(text: str) -> list[str]:
    """The lines holding a ``key: value`` (not a comment, not a section opening)."""
    return [line for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#") and not line.split("#")[0].rstrip().endswith(":")]


@pytest.mark.parametrize("task", ["classification", "segmentation", "detection"])
def test_a_starter_study_loads_in_every_profile_and_every_value_says_why(task, tmp_path):
    text = starter_study(survey(task), name="mine", command="python -m sweeps.new x")
    path = tmp_path / "mine.yaml"
    path.write_text(text, encoding="utf-8")
    spec = load_study(path)  # resolves full, cpu and cpu+smoke
    assert (spec.name, spec.trainable) == ("mine", task)
    unexplained = [line for line in value_lines(text) if " # " not in line]
    assert not unexplained


def test_the_image_size_is_the_ladder_step_under_the_median_short_side_capped_per_task():
    assert chosen_side(survey(sizes=[(640, 480)] * 3))[0] == 224
    assert chosen_side(survey(sizes=[(100, 90), (120, 100), (300, 300)]))[0] == 96
    assert chosen_side(survey(sizes=[(20, 24)]))[0] == 16
    assert chosen_side(survey("segmentation", sizes=[(1024, 1024)]))[0] == 256
    assert chosen_side(survey("detection", sizes=[(640, 480)]))[0] == 640


def test_small_images_keep_their_size_in_the_cpu_and_smoke_profiles(tmp_path):
    doc = yaml.safe_load(starter_study(survey(sizes=[(20, 20)]), name="tiny", command="x"))
    assert doc["data"]["image_size"] == 16
    assert doc["profiles"]["cpu"]["data"]["image_size"] == 16 and doc["profiles"]["smoke"]["data"]["image_size"] == 16


def test_imbalanced_classes_turn_on_the_weighted_loss_and_fixed_splits_drop_the_fractions():
    balanced = yaml.safe_load(starter_study(survey(), name="x", command="x"))
    skewed = yaml.safe_load(starter_study(survey(counts={"train": {"a": 90, "b": 10}, "val": {"a": 9, "b": 1}},
                                                 fixed=True), name="x", command="x"))
    assert balanced["fixed"]["weighted_loss"] is False and "split_fractions" in balanced["data"]
    assert skewed["fixed"]["weighted_loss"] is True and "split_fractions" not in skewed["data"]


def test_a_study_name_is_made_from_the_folder_name():
    assert study_name("My Smears (2024)") == "my_smears_2024"
    assert study_name("***") == "my_study"


def test_the_cli_refuses_an_option_of_another_format_a_missing_folder_and_an_existing_output(tmp_path, capsys):
    with pytest.raises(MedsweepError, match="--annotations does not apply to image_folder"):
        new_study("image_folder", str(tmp_path), annotations="x.json")
    assert main(["image_folder", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "taken.yaml").write_text("x")
    with pytest.raises(SystemExit):
        main(["image_folder", str(tmp_path), "-o", str(tmp_path / "taken.yaml")])
    assert "--force" in capsys.readouterr().err
