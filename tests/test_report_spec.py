"""A report's checks are typed and validated when a sweep is registered: a quantity of an
unknown kind, a metric without a declared direction, a group the report does not have or an
unknown split is an error naming the sweep, the check and the valid choices. A ``depends_on``
that is not a tuple of setting names is an error naming the check when it is built."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sweeps.registry import SWEEPS, get_sweep
from sweeps.report_spec import BestGroup, Check, ClassCount, ReportSpecError, WinnerScore
from sweeps.spec import SweepSpec


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_every_registered_sweeps_checks_validate(name):
    spec = get_sweep(name)
    spec.report.validate(name)
    assert spec.report.checks


def with_check(name: str, quantity) -> SweepSpec:
    """The sweep ``name`` with one check of ``quantity``, built as the registry builds it."""
    spec = get_sweep(name)
    check = Check(source="doc", statement="The claim", quantity=quantity, op=">", value=0.5)
    return replace(spec, report=replace(spec.report, checks=(check,)))


def test_a_mistyped_group_label_is_an_error_listing_the_reports_groups():
    with pytest.raises(ReportSpecError) as info:
        with_check("all_transfer", WinnerScore(metric="accuracy", group="VGG16 Finetune"))
    assert str(info.value) == ("sweep 'all_transfer', check 'The claim': group 'VGG16 Finetune' is not one of the "
                               "report's groups; valid: 'winner', 'CNN Custom', 'VGG16 Baseline', 'VGG16 Fine-Tune'")


def test_an_unknown_quantity_is_an_error_listing_the_valid_kinds():
    with pytest.raises(ReportSpecError, match="sweep 'bccd_imbalance', check 'The claim': quantity "
                                              "'test:accuracy@winner' is unknown; valid: WinnerScore, TrialScore, "
                                              "ClassCount, BestGroup, Diverged"):
        with_check("bccd_imbalance", "test:accuracy@winner")


@pytest.mark.parametrize("quantity", [WinnerScore(metric="acuracy"), BestGroup(metric="acuracy")])
def test_a_metric_without_a_declared_direction_is_an_error(quantity):
    with pytest.raises(ReportSpecError, match="sweep 'bccd_imbalance', check 'The claim': metric 'acuracy' has no "
                                              "declared direction.*declared: accuracy"):
        with_check("bccd_imbalance", quantity)


def test_an_unknown_split_is_an_error():
    with pytest.raises(ReportSpecError, match="check 'The claim': split 'training' is unknown; valid: all, train, "
                                              "val, test"):
        with_check("bccd_imbalance", ClassCount(split="training", class_name="WBC"))


def test_a_new_sweep_is_validated_when_it_is_built():
    with pytest.raises(ReportSpecError, match="sweep 'new_study', check 'The claim': group '1. Baseline' is not"):
        SweepSpec(name="new_study", study="A study", study_tag="new", trainable="classification",
                  metric="val_macro_f1",
                  report=replace(get_sweep("all_transfer").report,
                                 checks=(Check(source="doc", statement="The claim", op=">", value=0.5,
                                               quantity=WinnerScore(metric="accuracy", group="1. Baseline")),)))


def test_a_mistyped_best_group_is_an_error():
    spec = get_sweep("all_transfer")
    check = Check(source="doc", statement="The claim", quantity=BestGroup(metric="accuracy"), op="=",
                  value="VGG16 Finetune")
    with pytest.raises(ReportSpecError, match="check 'The claim': the best group 'VGG16 Finetune' is not one of the "
                                              "report's groups; valid: 'CNN Custom', 'VGG16 Baseline', "
                                              "'VGG16 Fine-Tune'"):
        replace(spec, report=replace(spec.report, checks=(check,)))


@pytest.mark.parametrize("depends_on", ["optimizer", (), ("optimizer", 1)])
def test_depends_on_must_be_a_tuple_of_setting_names(depends_on):
    with pytest.raises(ValueError, match="Check 'The claim': depends_on must be a non-empty tuple of setting names"):
        Check(source="doc", statement="The claim", quantity=WinnerScore(metric="accuracy"), op=">", value=0.5,
              depends_on=depends_on)
