"""Study files (issue #22): a study is one YAML file, the same format for the built-in studies
and a researcher's own.

The built-in studies read from their files are exactly the studies that were Python in
``sweeps/registry.py`` before: ``tests/data/builtin_studies_snapshot.json`` holds every one's
spec (report checks included) and its resolved sweep in every profile, as the registry gave
them; ``snapshot_text`` below wrote it. A broken study file is one ``StudyFileError`` naming the
file, the key path and the valid choices; a researcher's copy runs by its path.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from search_spaces import builtin_study_paths, search_space_path
from sweeps.registry import SWEEPS
from sweeps.run import main
from sweeps.space import resolve
from sweeps.study_file import StudyFileError, load_study

SNAPSHOT = Path(__file__).parent / "data" / "builtin_studies_snapshot.json"
PROFILES = (("cpu", False), ("full", False), ("cpu", True))


def canonical(value):
    """A JSON-ready form of a spec: dataclasses as their type name and fields (``init=False``
    ones included), tuples as lists, mappings in their order."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__type__": type(value).__name__,
                **{f.name: canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


def snapshot(specs) -> dict:
    """Every spec's canonical dump and its resolved sweep in every profile, by sweep name."""
    return {spec.name: {"spec": canonical(spec),
                        "resolved": {f"{profile}{'+smoke' if smoke else ''}":
                                     canonical(resolve(spec, profile=profile, smoke=smoke).to_dict())
                                     for profile, smoke in PROFILES}}
            for spec in specs}


def snapshot_text(specs) -> str:
    """The snapshot file's text (deterministic: sorted keys)."""
    return json.dumps(snapshot(specs), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("path", builtin_study_paths(), ids=lambda path: path.stem)
def test_every_builtin_study_file_gives_the_spec_and_sweeps_the_registry_gave(path):
    expected = json.loads(SNAPSHOT.read_text(encoding="utf-8"))[path.stem]
    spec = load_study(path, search_space=path.name)
    assert json.loads(snapshot_text([spec]))[path.stem] == expected


def test_the_registry_is_every_study_file_of_search_spaces():
    snapshot_names = set(json.loads(SNAPSHOT.read_text(encoding="utf-8")))
    assert set(SWEEPS) == {path.stem for path in builtin_study_paths()} == snapshot_names
    assert all(search_space_path(spec.search_space).is_file() for spec in SWEEPS.values())


# ---- broken study files --------------------------------------------------------------------

def _set(doc: dict, path: str, value) -> None:
    """Set ``a.b[2].c`` in ``doc`` (``DELETE`` removes the key)."""
    *parents, last = path.replace("[", ".").replace("]", "").split(".")
    for part in parents:
        doc = doc[int(part)] if part.isdigit() else doc[part]
    if value is DELETE:
        del doc[last]
    elif last.isdigit():
        doc[int(last)] = value
    else:
        doc[last] = value


DELETE = object()
BROKEN = [  # (what is set, to what; the key path the error names; what the error lists)
    ("reportt", {"document": "x"}, "reportt: unknown key", "valid: report, "),
    ("report.checks[3].tolerence", 0.1, "report.checks[3].tolerence: unknown key", "valid: tolerance, "),
    ("asha.grace_period", "five", "asha.grace_period: must be a whole number of epochs", "'five'"),
    ("study.trainable", "clasification", "study.trainable: 'clasification' is unknown",
     "valid: classification, "),
    ("study.metric", "val_macro_f2", "study.metric: metric 'val_macro_f2' has no declared direction",
     "valid: val_macro_f1"),
    ("report.checks[8].quantity.metric", "macro_f2", "report.checks[8].quantity.metric: metric 'macro_f2'",
     "valid: macro_f1"),
    ("report.sections[2]", "confusion_matrx", "report.sections[2]: 'confusion_matrx' is unknown",
     "valid: confusion_matrix, "),
    ("data.dataset", "bcdd", "data.dataset: 'bcdd' is unknown", "valid: bccd, "),
    ("grid.model", ["efficientnet_b0", "efficientnet_b9"],
     "grid.model[1]: unknown classification model 'efficientnet_b9'; near matches: efficientnet_b",
     "valid classification models: any timm model name (timm.list_models()) or one of: efficientnet_b0"),
    ("report.checks[0].op", "=>", "report.checks[0].op: '=>' is unknown", "valid: "),
    ("study.name", DELETE, "study.name: is missing", ""),
    ("report.group_labels[0].values", [False], "report.group_labels[0].values: has 1 value(s) but group_by names 2",
     "weighted_loss, oversampling"),
    ("report.checks[0].quantity.kind", "winner_scor", "report.checks[0].quantity.kind: 'winner_scor' is unknown",
     "valid: winner_score, "),
    ("report.checks[2].quantity.group", "4. Final", "report.checks[2].quantity.group: '4. Final' is unknown",
     "valid: 4. Final Model, "),
    ("report.checks[8].value", "5. Final Model", "report.checks[8].value: '5. Final Model' is unknown",
     "valid: 4. Final Model, "),
    ("group_by", ["weighted_loss", "oversamplng"], "group_by[1]: 'oversamplng' is unknown", "valid: oversampling, "),
    ("report.checks[9].quantity.split", "tests", "report.checks[9].quantity.split: 'tests' is unknown",
     "valid: test, "),
    ("resources.cpu", {"cpus": 1}, "resources.cpu.gpus: is missing", ""),
]


@pytest.mark.parametrize("key, value, names, choices", BROKEN, ids=[case[0] for case in BROKEN])
def test_a_broken_study_file_is_one_error_naming_the_file_the_key_and_the_choices(tmp_path, key, value, names,
                                                                                   choices):
    doc = yaml.safe_load(search_space_path("bccd_imbalance.yaml").read_text(encoding="utf-8"))
    _set(doc, key, value)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    with pytest.raises(StudyFileError) as error:
        load_study(path)
    message = str(error.value)
    assert message.startswith(f"{path}: {names}"), message
    assert choices in message, message


def test_a_study_file_that_is_not_there_or_not_yaml_is_a_clear_error(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere.yaml"), "--check-data"]) == 2
    assert f"error: {tmp_path / 'nowhere.yaml'}: no such study file" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("study: [unclosed\n")
    with pytest.raises(StudyFileError, match="bad.yaml: not valid YAML"):
        load_study(tmp_path / "bad.yaml")


# ---- a researcher's own study file -----------------------------------------------------------

def own_study(folder: Path) -> Path:
    """A copy of bccd_imbalance's study file named my_bccd, with a grid of its own (comments kept)."""
    text = search_space_path("bccd_imbalance.yaml").read_text(encoding="utf-8")
    text = text.replace("  name: bccd_imbalance ", "  name: my_bccd        ", 1)
    old_lr = "  lr: [1.0e-4, 3.0e-4, 1.0e-3]"
    assert "name: my_bccd" in text and old_lr in text
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "my_bccd.yaml"
    path.write_text(text.replace(old_lr, "  lr: [1.0e-3]                "), encoding="utf-8")
    return path


def test_a_researchers_study_file_runs_by_its_path_and_is_listed(tmp_path, capsys, shared_data_dir):
    path = own_study(tmp_path / "studies")
    spec = load_study(path)
    assert (spec.name, spec.search_space) == ("my_bccd", str(path.resolve()))
    assert resolve(spec, profile="full").grid["lr"] == [1.0e-3]
    storage = tmp_path / "runs"
    assert main([str(path), "--check-data", "--data-dir", str(shared_data_dir), "--storage", str(storage)]) == 0
    assert [p.name for p in storage.iterdir()] == ["my_bccd_data_audit"]
    capsys.readouterr()
    assert main(["--list", str(tmp_path / "studies")]) == 0
    listed = capsys.readouterr().out
    assert "my_bccd " in listed and "classification" in listed and "    4  val_macro_f1 (max)" in listed
    assert main(["--list"]) == 0
    builtin = capsys.readouterr().out
    assert all(name in builtin for name in SWEEPS) and "my_bccd" not in builtin


def test_listing_a_folder_with_a_broken_study_file_names_it(tmp_path, capsys):
    (tmp_path / "broken.yml").write_text("study: {name: x}\n")
    assert main(["--list", str(tmp_path)]) == 2
    assert f"{tmp_path / 'broken.yml'}: " in capsys.readouterr().err


def test_the_analysis_reads_the_spec_from_the_experiments_copy_of_its_study_file(tmp_path):
    from analysis.results import load_experiment
    from tests.synthetic_experiment import make_experiment, trial

    directory = make_experiment(tmp_path / "exp", [trial("t1", [0.5, 0.6])])
    assert load_experiment(directory).spec.name == "bccd_imbalance"      # no copy: the built-in study
    study = own_study(tmp_path / "studies")
    (directory / "study.yaml").write_text(study.read_text(encoding="utf-8"), encoding="utf-8")
    study.unlink()                                                        # wherever the file was
    experiment = load_experiment(directory)
    assert (experiment.spec.name, experiment.spec.search_space) == ("my_bccd", str(directory / "study.yaml"))


def test_resume_reads_the_spec_from_the_experiments_copy_local_or_in_uri_storage(tmp_path):
    from sweeps.storage import ExperimentLocation
    from sweeps.sweep import experiment_spec

    builtin = SWEEPS["bccd_imbalance"]
    study = own_study(tmp_path / "studies")
    for storage in (str(tmp_path / "local"), f"file://{tmp_path / 'uri'}"):
        location = ExperimentLocation(storage, "my_bccd_1")
        location.write_text("sweep.json", "{}")
        assert experiment_spec(location, builtin) is builtin                # written before experiments kept one
        location.write_text("study.yaml", study.read_text(encoding="utf-8"))
        spec = experiment_spec(location, builtin)
        assert (spec.name, spec.search_space) == ("my_bccd", f"{location.path}/study.yaml")
        assert spec.report == builtin.report
