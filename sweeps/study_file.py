"""A study file: one YAML holding a whole study, built-in or a researcher's own.

Its ``data``, ``fixed``, ``grid`` and ``profiles`` are the search space (``sweeps.space``);
``study``, ``asha``, ``resources``, ``group_by``, ``wandb`` and ``report`` are the rest of the
``SweepSpec``, key for key its fields (``docs/study-files.md``)::

    study: {name: my_study, title: "...", tag: my-tag, trainable: classification, metric: val_macro_f1}
    asha: {grace_period: 5, reduction_factor: 3}
    resources: {full: {cpus: 4, gpus: 1}, cpu: {cpus: 1, gpus: 0}}
    group_by: [model]
    wandb: {project: medsweep, entity: null}
    report:
      document: seed 001
      sections: [summary, confirmation, checks, trials]
      group_labels: [{values: [vgg16_finetune], label: VGG16 Fine-Tune}]
      citations: {model_comparison: Model Comparison Summary}
      curves: [val_accuracy]
      evaluate_all_trials: false
      checks:
        - {source: seed 001 Champion Model, statement: VGG16 Fine-Tune macro F1 0.985,
           quantity: {kind: winner_score, metric: macro_f1, group: VGG16 Fine-Tune}, op: "≈", value: 0.985,
           tolerance: 0.02}

``load_study`` validates it on entry into the frozen typed objects the code uses (``SweepSpec``,
``ReportSpec``, ``Check`` …), then resolves its space in every profile: the first thing wrong
is one ``StudyFileError`` naming the file, the key path (``report.checks[3].quantity.metric``)
and the valid choices, nearest first, before any data is read or Ray starts.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from sweeps.report_spec import (
    COUNT_SPLITS,
    OPERATORS,
    SECTION_NAMES,
    WINNER,
    BestGroup,
    Check,
    ClassCount,
    Diverged,
    ReportSpec,
    ReportSpecError,
    TrialScore,
    WinnerScore,
)
from sweeps.spec import SPACE_SECTIONS, STUDY_SECTIONS, AshaSettings, Resources, SweepSpec, WandbSettings
from trainables.errors import SearchSpaceError, UnknownNameError
from trainables.metrics import METRIC_DIRECTIONS, metric_direction

TOP_LEVEL = (*STUDY_SECTIONS, *SPACE_SECTIONS)
STUDY_SUFFIXES = (".yaml", ".yml")
# A check's quantity by its ``kind:``; the other keys of ``quantity:`` are the class's fields.
QUANTITY_KINDS = {"winner_score": WinnerScore, "trial_score": TrialScore, "class_count": ClassCount,
                  "best_group": BestGroup, "diverged": Diverged}
CHECK_KINDS = ("target", "claim")
# The profiles every study resolves in, checked when the file is loaded.
PROFILES = (("full", False), ("cpu", False), ("cpu", True))


class StudyFileError(SearchSpaceError):
    """A study file that cannot become a study: names the file, the key path and the valid choices."""


def is_study_path(name: str) -> bool:
    """Whether a sweep name on the command line is a study file's path rather than a built-in's name."""
    return name.endswith(STUDY_SUFFIXES) or "/" in name


def load_study(path: str | Path, *, search_space: str | None = None) -> SweepSpec:
    """The validated ``SweepSpec`` of the study file at ``path``; its ``search_space`` is that
    file (``search_space`` names it otherwise: a built-in's file name in ``search_spaces/``).
    Every profile's space is resolved here, so a study that loads also runs."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudyFileError(f"{path}: no such study file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StudyFileError(f"{path}: cannot read it ({exc})") from exc
    except yaml.YAMLError as exc:
        raise StudyFileError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from exc
    spec = _Reader(path).spec(doc, search_space or str(path.resolve()))
    from sweeps.space import resolve
    for profile, smoke in PROFILES:
        try:
            resolve(spec, profile=profile, smoke=smoke, path=path)
        except StudyFileError:
            raise
        except SearchSpaceError as exc:
            raise StudyFileError(str(exc)) from exc
    return spec


def study_files(directory: str | Path) -> list[Path]:
    """The study files of a folder, by name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise StudyFileError(f"{directory}: no such folder of study files")
    return sorted(path for path in directory.iterdir() if path.suffix in STUDY_SUFFIXES and path.is_file())


def choices_text(value: Any, choices: Iterable[Any]) -> str:
    """``valid: a, b, c`` with the choices nearest to ``value`` first."""
    names = [str(choice) for choice in choices]
    near = difflib.get_close_matches(str(value), names, n=3, cutoff=0.6)
    return "valid: " + ", ".join([*near, *(name for name in names if name not in near)])


@dataclasses.dataclass(frozen=True)
class _Reader:
    """Reads one study file's sections; every error names ``path`` and the key path."""

    path: Path

    def error(self, key: str, problem: str) -> StudyFileError:
        return StudyFileError(f"{self.path}: {key}: {problem}" if key else f"{self.path}: the file {problem}")

    def mapping(self, value: Any, key: str, keys: Iterable[str], required: Iterable[str] = ()) -> dict:
        """``value`` as a mapping with only ``keys`` and every ``required`` one."""
        keys = tuple(keys)
        if not isinstance(value, Mapping):
            raise self.error(key, f"must be a mapping with keys {', '.join(keys)}, got {value!r}")
        for name in value:
            if name not in keys:
                raise self.error(f"{key}.{name}" if key else str(name), f"unknown key; {choices_text(name, keys)}")
        for name in required:
            if name not in value:
                raise self.error(f"{key}.{name}" if key else name, "is missing")
        return dict(value)

    def typed(self, value: Any, key: str, kind: type | tuple[type, ...], text: str) -> Any:
        """``value`` if it is a ``kind`` (a bool is never a number here), else an error saying ``text``."""
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.error(key, f"must be {text}, got {value!r}")
        if not isinstance(value, kind):
            raise self.error(key, f"must be {text}, got {value!r}")
        return value

    def text(self, value: Any, key: str) -> str:
        return self.typed(value, key, str, "a text")

    def texts(self, value: Any, key: str) -> tuple[str, ...]:
        self.typed(value, key, list, "a list of names")
        return tuple(self.text(item, f"{key}[{index}]") for index, item in enumerate(value))

    def number(self, value: Any, key: str) -> int | float:
        return self.typed(value, key, (int, float), "a number")

    def choice(self, value: Any, key: str, choices: Iterable[Any]) -> Any:
        choices = list(choices)
        if value not in choices:
            raise self.error(key, f"{value!r} is unknown; {choices_text(value, choices)}")
        return value

    def metric(self, value: Any, key: str, *, prefixed: bool) -> str:
        """A metric declared in ``METRIC_DIRECTIONS`` (``val_``-prefixed for the selection metric)."""
        self.text(value, key)
        try:
            metric_direction(value)
        except UnknownNameError:
            names = [f"val_{name}" for name in METRIC_DIRECTIONS] if prefixed else list(METRIC_DIRECTIONS)
            raise self.error(key, f"metric {value!r} has no declared direction (declare it in METRIC_DIRECTIONS, "
                                  f"trainables/metrics/directions.py); {choices_text(value, names)}") from None
        return value

    # ---- the sections ---------------------------------------------------------------------

    def spec(self, doc: Any, search_space: str) -> SweepSpec:
        doc = self.mapping(doc if doc is not None else {}, "", TOP_LEVEL, required=("study", "data"))
        study = self.mapping(doc["study"], "study", ("name", "title", "tag", "trainable", "metric"),
                             required=("name", "title", "tag", "trainable", "metric"))
        name = self.text(study["name"], "study.name")
        if not name or not all(char.isalnum() or char in "_-" for char in name):
            raise self.error("study.name", f"must be letters, digits, _ and - only (it names the experiment "
                                            f"folders), got {name!r}")
        from trainables.registry import TRAINABLES
        trainable = self.choice(self.text(study["trainable"], "study.trainable"), "study.trainable", TRAINABLES)
        metric = self.metric(study["metric"], "study.metric", prefixed=True)
        self.space_names(doc, trainable)
        group_by = self.group_by(doc)
        title, tag = self.text(study["title"], "study.title"), self.text(study["tag"], "study.tag")
        asha, resources = self.asha(doc.get("asha", {})), self.resources(doc.get("resources"))
        wandb = self.wandb(doc.get("wandb", {}))
        report = self.report(doc.get("report", {}), group_by, doc.get("grid", {}))
        try:
            return SweepSpec(name=name, study=title, study_tag=tag, trainable=trainable, metric=metric,
                             search_space=search_space, asha=asha, resources=resources, group_by=group_by,
                             wandb=wandb, report=report)
        except ReportSpecError as exc:  # what ReportSpec.validate finds that the checks above did not
            raise self.error("report.checks", str(exc)) from exc

    def asha(self, value: Any) -> AshaSettings:
        asha = self.mapping(value, "asha", ("grace_period", "reduction_factor"))
        if "grace_period" in asha and (self.typed(asha["grace_period"], "asha.grace_period", int,
                                                  "a whole number of epochs") < 1):
            raise self.error("asha.grace_period", f"must be at least 1, got {asha['grace_period']!r}")
        if "reduction_factor" in asha and self.number(asha["reduction_factor"], "asha.reduction_factor") <= 1:
            raise self.error("asha.reduction_factor", f"must be above 1, got {asha['reduction_factor']!r}")
        return AshaSettings(**asha)

    def resources(self, value: Any) -> dict[str, Resources]:
        if value is None:
            return SweepSpec.__dataclass_fields__["resources"].default_factory()
        profiles = self.mapping(value, "resources", ("full", "cpu"), required=("full", "cpu"))
        resources = {}
        for profile, request in profiles.items():
            request = self.mapping(request, f"resources.{profile}", ("cpus", "gpus"), required=("cpus", "gpus"))
            for key, amount in request.items():
                if self.number(amount, f"resources.{profile}.{key}") < 0:
                    raise self.error(f"resources.{profile}.{key}", f"must not be negative, got {amount!r}")
            resources[profile] = Resources(**request)
        return resources

    def wandb(self, value: Any) -> WandbSettings:
        wandb = self.mapping(value, "wandb", ("project", "entity"))
        self.text(wandb.get("project", ""), "wandb.project")
        if wandb.get("entity") is not None:
            self.text(wandb["entity"], "wandb.entity")
        return WandbSettings(**wandb)

    def space_names(self, doc: Mapping[str, Any], trainable: str) -> None:
        """The dataset and every model named in ``fixed``/``grid`` (and each profile's) exist, each
        model for ``trainable``'s task under its model key (``model``, detection's ``backbone``)."""
        from trainables.datasets import DATASETS
        from trainables.models import MODEL_KEYS
        model_key = MODEL_KEYS.get(trainable)
        data = self.typed(doc["data"], "data", Mapping, "a mapping of data settings")
        if "dataset" in data:
            self.choice(data["dataset"], "data.dataset", DATASETS)
        profiles = doc.get("profiles") or {}
        places = [("", doc)] + [(f"profiles.{name}.", layer) for name, layer in profiles.items()
                                if isinstance(layer, Mapping)]
        for prefix, place in places:
            if isinstance(place.get("data"), Mapping) and "dataset" in place["data"]:
                self.choice(place["data"]["dataset"], f"{prefix}data.dataset", DATASETS)
            fixed, grid = place.get("fixed") or {}, place.get("grid") or {}
            if isinstance(fixed, Mapping) and model_key in fixed:
                self.model(fixed[model_key], f"{prefix}fixed.{model_key}", trainable)
            axis = grid.get(model_key) if isinstance(grid, Mapping) else None
            if isinstance(axis, Mapping):
                axis, key = axis.get("values", axis.get("choice")), f"{prefix}grid.{model_key}.values"
            else:
                key = f"{prefix}grid.{model_key}"
            for index, model in enumerate(axis if isinstance(axis, list) else []):
                self.model(model, f"{key}[{index}]", trainable)

    def model(self, value: Any, key: str, trainable: str) -> None:
        """A model name ``trainable``'s task accepts (for classification any timm model too)."""
        from trainables.models import is_model_name, unknown_model_message
        if not is_model_name(trainable, value):
            raise self.error(key, unknown_model_message(trainable, value))

    def group_by(self, doc: Mapping[str, Any]) -> tuple[str, ...]:
        """The compared axes: keys of the grid (or of fixed, an arm of one)."""
        group_by = self.texts(doc.get("group_by", []), "group_by")
        axes = [*(doc.get("grid") or {}), *(doc.get("fixed") or {})]
        for index, axis in enumerate(group_by):
            self.choice(axis, f"group_by[{index}]", axes)
        return group_by

    def report(self, value: Any, group_by: tuple[str, ...], grid: Any) -> ReportSpec:
        fields = [f.name for f in dataclasses.fields(ReportSpec)]
        report = self.mapping(value, "report", fields)
        defaults = ReportSpec()
        sections = defaults.sections
        if "sections" in report:
            sections = self.texts(report["sections"], "report.sections")
            for index, section in enumerate(sections):
                self.choice(section, f"report.sections[{index}]", SECTION_NAMES)
        labels = self.group_labels(report.get("group_labels", []), group_by)
        citations = self.typed(report.get("citations", {}), "report.citations", Mapping,
                               "a mapping of section → where in the document")
        for topic, where in citations.items():
            self.text(topic, f"report.citations.{topic}")
            self.text(where, f"report.citations.{topic}")
        curves = self.texts(report.get("curves", []), "report.curves")
        for index, curve in enumerate(curves):
            self.metric(curve, f"report.curves[{index}]", prefixed=True)
        evaluate_all = self.typed(report.get("evaluate_all_trials", False), "report.evaluate_all_trials", bool,
                                  "true or false")
        checks = report.get("checks", [])
        self.typed(checks, "report.checks", list, "a list of checks")
        group_names = (WINNER, *(label for _, label in labels))
        axes = list(grid) if isinstance(grid, Mapping) else []
        return ReportSpec(document=self.text(report.get("document", defaults.document), "report.document"),
                          sections=sections, group_labels=labels,
                          checks=tuple(self.check(check, f"report.checks[{index}]", group_names, axes)
                                       for index, check in enumerate(checks)),
                          citations=tuple(citations.items()), curves=curves, evaluate_all_trials=evaluate_all)

    def group_labels(self, value: Any, group_by: tuple[str, ...]) -> tuple[tuple[tuple, str], ...]:
        self.typed(value, "report.group_labels", list, "a list of {values: [...], label: ...}")
        labels = []
        for index, item in enumerate(value):
            key = f"report.group_labels[{index}]"
            item = self.mapping(item, key, ("values", "label"), required=("values", "label"))
            values = self.typed(item["values"], f"{key}.values", list, "a list of the group_by axes' values")
            if len(values) != len(group_by):
                raise self.error(f"{key}.values", f"has {len(values)} value(s) but group_by names {len(group_by)} "
                                                  f"axis(es) ({', '.join(group_by) or 'none'}); give one value "
                                                  f"per axis, in that order")
            labels.append((tuple(values), self.text(item["label"], f"{key}.label")))
        return tuple(labels)

    def check(self, value: Any, key: str, groups: tuple[str, ...], axes: list[str]) -> Check:
        fields = [f.name for f in dataclasses.fields(Check)]
        check = self.mapping(value, key, fields, required=("source", "statement", "quantity", "op", "value"))
        for name in ("source", "statement"):
            self.text(check[name], f"{key}.{name}")
        quantity = self.quantity(check["quantity"], f"{key}.quantity", groups, axes)
        self.choice(check["op"], f"{key}.op", OPERATORS)
        self.typed(check["value"], f"{key}.value", (int, float, str), "a number or a text")
        if "kind" in check:
            self.choice(check["kind"], f"{key}.kind", CHECK_KINDS)
        if "tolerance" in check and self.number(check["tolerance"], f"{key}.tolerance") < 0:
            raise self.error(f"{key}.tolerance", f"must not be negative, got {check['tolerance']!r}")
        if check.get("depends_on") is not None:
            check["depends_on"] = self.texts(check["depends_on"], f"{key}.depends_on")
            if not check["depends_on"]:
                raise self.error(f"{key}.depends_on", "must name at least one setting, or be null for every setting")
        if isinstance(quantity, BestGroup):
            self.choice(check["value"], f"{key}.value", groups[1:])
        try:
            return Check(**{**check, "quantity": quantity})
        except ValueError as exc:
            raise self.error(key, str(exc)) from exc

    def quantity(self, value: Any, key: str, groups: tuple[str, ...], axes: list[str]):
        if not isinstance(value, Mapping) or "kind" not in value:
            raise self.error(key, f"must be a mapping with a kind ({', '.join(QUANTITY_KINDS)}) and its fields, "
                                  f"got {value!r}")
        kind = self.choice(value["kind"], f"{key}.kind", QUANTITY_KINDS)
        cls = QUANTITY_KINDS[kind]
        fields = dataclasses.fields(cls)
        required = [f.name for f in fields if f.default is dataclasses.MISSING]
        quantity = self.mapping({k: v for k, v in value.items() if k != "kind"}, key,
                                ["kind", *(f.name for f in fields)], required=required)
        if "metric" in quantity:
            self.metric(quantity["metric"], f"{key}.metric", prefixed=False)
        if "group" in quantity:
            self.choice(self.text(quantity["group"], f"{key}.group"), f"{key}.group", groups)
        if "split" in quantity:
            self.choice(quantity["split"], f"{key}.split", COUNT_SPLITS)
        if "class_name" in quantity:
            self.text(quantity["class_name"], f"{key}.class_name")
        if "where" in quantity:
            where = self.mapping(quantity["where"], f"{key}.where", axes)
            quantity["where"] = where
        return cls(**quantity)
