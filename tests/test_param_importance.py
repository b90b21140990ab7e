"""Parameter importance and parallel coordinates in the report, on synthetic experiments whose
metric one axis drives (no Ray, no training): the figures are written and embedded, the
importances sum to 1 over the varying axes with the driving axis first, ASHA-stopped trials
count at their budget, and too little to compare gives a sentence instead of a crash."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from matplotlib.collections import LineCollection
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from analysis import figures
from analysis.document import Document, Figure, Paragraph, to_html, to_markdown
from analysis.importance import axis_distribution, parameter_importance
from analysis.rerun import RerunSettings
from analysis.results import load_experiment
from analysis.sections import render_sections
from analysis.sections.base import ReportContext
from analysis.sections.sweep import sweep_section
from analysis.winners import pick_winners
from tests.synthetic_experiment import grid_trials, make_experiment, trial

NEW_FIGURES = {"param_importance.png", "parallel_coordinates.png"}
# Grid indices ending otherwise than completed; ASHA stops g03 and g04 after their first epoch.
REASONS = {3: "stopped_by_asha", 4: "stopped_by_asha", 6: "early_stopped_patience", 7: "diverged", 10: "errored"}
DRIVERS = {
    "lr": lambda c: 0.2 + 0.25 * math.log10(c["lr"] / 1e-4) + 0.01 * c["oversampling"] + 0.005 * c["weighted_loss"],
    "weighted_loss": lambda c: 0.3 + 0.4 * c["weighted_loss"] + 0.02 * c["oversampling"] + 10 * c["lr"],
}


def context_of(directory: Path, trials: list[dict]) -> ReportContext:
    """A report context of ``trials`` without test-split results (what needs them is skipped)."""
    experiment = load_experiment(make_experiment(directory / "exp", trials))
    return ReportContext(experiment=experiment, winners=pick_winners(experiment), confirmation=None,
                         spec=experiment.spec.report, figures_dir=directory / "report" / "figures",
                         settings=RerunSettings(seeds=0))


def text_of(blocks) -> str:
    return " ".join(block.text for block in blocks if isinstance(block, Paragraph))


def figure_names(blocks) -> set[str]:
    return {block.path.name for block in blocks if isinstance(block, Figure)}


@pytest.fixture
def drawn(monkeypatch) -> dict[str, object]:
    """The matplotlib figures the report saves, by file name, kept after saving."""
    found = {}
    save = figures._save

    def keep(fig, path):
        found[Path(path).name] = fig
        return save(fig, path)

    monkeypatch.setattr(figures, "_save", keep)
    return found


def test_the_report_writes_both_figures_and_embeds_them_with_what_they_show(tmp_path):
    context = context_of(tmp_path, grid_trials(DRIVERS["lr"], reasons=REASONS))
    document = Document("synthetic")
    document.add(*render_sections(context))                        # the sections bccd_imbalance lists
    out = context.figures_dir.parent
    markdown, html = to_markdown(document, figures_relative_to=out), to_html(document)
    embedded = {figure.path.name: figure for figure in document.figures}
    assert NEW_FIGURES <= set(embedded)
    for name in NEW_FIGURES:
        assert embedded[name].path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"](figures/{name})" in markdown
    assert html.count("src='data:image/png;base64,") == len(document.figures)
    text = text_of(document.blocks)
    assert "fANOVA" in text and "12-point grid" in text and "coarse" in text
    assert "categories without an order" in text and "lr is drawn on a log scale" in text
    assert "left out (1 diverged, 1 errored)" in text and "ASHA stopped 2 of them" in text


@pytest.mark.parametrize("driver", sorted(DRIVERS))
def test_importances_sum_to_one_over_the_varying_axes_and_the_driving_axis_ranks_first(tmp_path, driver):
    experiment = context_of(tmp_path, grid_trials(DRIVERS[driver], reasons=REASONS)).experiment
    found = parameter_importance(experiment)
    assert set(found.importances) == {"weighted_loss", "oversampling", "lr"}
    assert sum(found.importances.values()) == pytest.approx(1.0)
    assert next(iter(found.importances)) == driver
    assert found.importances[driver] > 0.6


def test_asha_stopped_trials_count_at_their_budget_and_are_drawn_dashed(tmp_path, drawn):
    context = context_of(tmp_path, grid_trials(DRIVERS["lr"], reasons=REASONS))
    found = parameter_importance(context.experiment)
    used = found.trials.set_index("trial_id")
    assert set(used.index) == {f"g{i:02d}" for i in range(12)} - {"g07", "g10"}   # not diverged, not errored
    assert list(used.loc[["g03", "g04"], "epochs"]) == [1, 1]
    config = context.experiment.config("g03")
    assert used.loc["g03", "best_val_macro_f1"] == pytest.approx(DRIVERS["lr"](config))   # its only epoch
    sweep_section(context)
    host = drawn["parallel_coordinates.png"].axes[0]
    lines = {c.get_label(): c for c in host.collections if isinstance(c, LineCollection)}
    assert set(lines) == {"completed (7)", "early_stopped_patience (1)", "stopped_by_asha (2)"}
    assert len(lines["stopped_by_asha (2)"].get_segments()) == 2
    assert lines["stopped_by_asha (2)"].get_linestyle() != lines["completed (7)"].get_linestyle()
    axes = {ax.get_label(): ax for ax in drawn["parallel_coordinates.png"].axes[1:]}
    assert list(axes) == ["weighted_loss", "oversampling", "lr", "epochs run", "best val_macro_f1"]
    assert axes["lr"].get_yscale() == "log" and axes["best val_macro_f1"].get_yscale() == "linear"
    assert [t.get_text() for t in axes["weighted_loss"].get_yticklabels()] == ["False", "True"]


def test_with_one_varying_axis_it_carries_all_importance_and_the_constant_ones_are_named(tmp_path):
    context = context_of(tmp_path, [trial(f"t{i}", [0.1 * i, 0.2 * i], lr=lr) for i, lr in
                                    enumerate((1e-4, 3e-4, 1e-3), start=1)])
    found = parameter_importance(context.experiment)
    assert found.importances == {"lr": pytest.approx(1.0)}
    assert found.constant == ["weighted_loss", "oversampling"]
    blocks = sweep_section(context)
    assert NEW_FIGURES <= figure_names(blocks)
    text = text_of(blocks)
    assert "Only lr varied among the finished trials" in text
    assert "A constant axis has no importance and is not drawn: weighted_loss, oversampling" in text


def test_a_metric_every_trial_shares_gets_no_importance_but_its_parallel_coordinates(tmp_path):
    context = context_of(tmp_path, grid_trials(lambda config: 0.5))
    blocks = sweep_section(context)
    assert figure_names(blocks) >= {"parallel_coordinates.png"} and "param_importance.png" not in figure_names(blocks)
    assert "No importance is given: every finished trial reached the same best val_macro_f1" in text_of(blocks)


def test_fewer_than_two_finished_trials_skip_both_figures_with_a_sentence(tmp_path):
    context = context_of(tmp_path, [trial("t1", [0.4, 0.5]), trial("t2", [0.3, math.nan], lr=1e-4,
                                                                    stop_reason="diverged"),
                                    trial("t3", [0.2], oversampling=True, status="ERROR", stop_reason="",
                                          error="RuntimeError: boom")])
    blocks = sweep_section(context)
    assert not NEW_FIGURES & figure_names(blocks)
    assert not any((context.figures_dir / name).exists() for name in NEW_FIGURES)
    assert ("Not drawn: only 1 trial(s) finished with a finite val_macro_f1, and importance compares finished "
            "trials.") in text_of(blocks)


@pytest.mark.parametrize("values, expected", [
    ([False, True], CategoricalDistribution([False, True])),
    (["resnet18", "efficientnet_b0"], CategoricalDistribution(["efficientnet_b0", "resnet18"])),
    ([1e-4, 3e-4, 1e-3], FloatDistribution(1e-4, 1e-3, log=True)),
    ([0, 0.2, 0.5], FloatDistribution(0.0, 0.5)),
    ([16, 32, 64], IntDistribution(16, 64)),
    ([16, 512], IntDistribution(16, 512, log=True)),
])
def test_booleans_and_text_are_categorical_and_wide_positive_ranges_are_log_scaled(values, expected):
    assert axis_distribution(values) == expected
