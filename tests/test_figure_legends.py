"""Every report figure with a legend shows, for each entry, the colour of the artists it labels.

The figures come from a synthetic experiment (no Ray, no training) through the report's own
sections where they draw them, and from small synthetic arrays for the figures of test-split
outputs. They are read as matplotlib objects: the legend's handles against the lines, bars and
markers carrying the same label, never the pixels.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import Collection
from matplotlib.colors import to_rgb
from matplotlib.container import Container
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from analysis import figures
from analysis.rerun import RerunSettings
from analysis.results import load_experiment
from analysis.sections.base import ReportContext
from analysis.sections.common import training_curves
from analysis.sections.sweep import sweep_section
from analysis.winners import pick_winners
from tests.synthetic_experiment import grid_trials, make_experiment

# Every function of analysis.figures that draws and saves one figure (it takes a ``path``).
FIGURE_FUNCTIONS = sorted(name for name, function in inspect.getmembers(figures, inspect.isfunction)
                          if function.__module__ == figures.__name__
                          and "path" in inspect.signature(function).parameters)
# The figures that have a legend today; a figure that loses its legend or gains one shows up here.
WITH_LEGENDS = {"roc_curves", "training_curves", "hyperparameters_against_metric", "epochs_per_trial",
                "parallel_coordinates"}
# One trial of each way a finished or failed trial can end, on the bccd_imbalance smoke grid.
REASONS = {1: "stopped_by_asha", 2: "early_stopped_patience", 5: "stopped_by_asha", 7: "diverged", 9: "errored"}
CLASS_NAMES = ("RBC", "WBC", "Platelets")


@pytest.fixture
def drawn(monkeypatch) -> dict[str, Figure]:
    """The figure each figure function drew, by the function's name, kept after it was saved."""
    saved: list[Figure] = []
    found: dict[str, Figure] = {}
    save = figures._save

    def keep(fig, path):
        saved.append(fig)
        return save(fig, path)

    def recording(name, function):
        def draw(*args, **kwargs):
            path = function(*args, **kwargs)
            found[name] = saved[-1]
            return path
        return draw

    monkeypatch.setattr(figures, "_save", keep)
    for name in FIGURE_FUNCTIONS:
        monkeypatch.setattr(figures, name, recording(name, getattr(figures, name)))
    return found


def lr_value(config: dict) -> float:
    """A validation metric that rises with the learning rate, a little with each correction."""
    return 0.3 + 0.2 * math.log10(config["lr"] / 1e-4) + 0.03 * config["weighted_loss"] + 0.02 * config["oversampling"]


def synthetic_context(tmp_path: Path) -> ReportContext:
    """A report context of a 12-trial experiment ending every way, without test-split results."""
    experiment = load_experiment(make_experiment(tmp_path / "exp", grid_trials(lr_value, reasons=REASONS)))
    return ReportContext(experiment=experiment, winners=pick_winners(experiment), confirmation=None,
                         spec=experiment.spec.report, figures_dir=tmp_path / "figures", settings=RerunSettings(seeds=0))


def draw_test_split_figures(directory: Path) -> None:
    """The figures of test-split outputs, from small synthetic arrays."""
    rng = np.random.default_rng(0)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    probabilities = rng.dirichlet(np.ones(3), size=len(labels))
    images = rng.integers(0, 255, (len(labels), 16, 16, 3), dtype=np.uint8)
    masks = rng.random((4, 16, 16)) > 0.5
    figures.confusion_matrices(np.array([[5, 1, 0], [1, 3, 1], [0, 1, 2]]), CLASS_NAMES, directory / "cm.png", "cm")
    figures.roc_curves(labels, probabilities, CLASS_NAMES, {f"auc_{n}": 0.5 for n in CLASS_NAMES},
                       directory / "roc.png", "roc")
    figures.prediction_grid(images, labels, probabilities, CLASS_NAMES, directory / "predictions.png")
    figures.mask_overlays(images[:4], masks, ~masks, np.full(4, 0.5), directory / "masks.png")
    figures.estimates_by_label(pd.DataFrame({"label": ["a", "b"], "mean": [0.5, 0.6], "low": [0.4, 0.5],
                                             "high": [0.6, 0.7]}), "macro_f1", directory / "estimates.png")
    grid = pd.DataFrame([{"min_confidence": c, "nms_iou": n, "map50": c * n} for c in (0.3, 0.5) for n in (0.2, 0.5)])
    figures.inference_heatmap(grid, "map50", {"min_confidence": 0.5, "nms_iou": 0.2}, directory / "grid.png", "grid")
    boxes = np.array([[1.0, 1.0, 8.0, 8.0]])
    figures.detection_grid([images[0]], [(boxes, np.array([1]), np.array([0.9]), masks[:1].astype(float))],
                           [{"boxes": boxes, "source": "img0"}], CLASS_NAMES, directory / "detections.png")


def colours(artist) -> list[tuple[float, float, float]]:
    """The RGB colours ``artist`` draws with: a container's children, a line's colour (its
    markers' face colour when it draws no line), a patch's face, a collection's faces or lines."""
    if isinstance(artist, Container):
        return [c for child in artist.get_children() for c in colours(child)]
    if isinstance(artist, Line2D):
        drawn = artist.get_color() if artist.get_linestyle() not in ("None", "", " ") else artist.get_markerfacecolor()
        return [to_rgb(drawn)]
    if isinstance(artist, Collection):
        faces = artist.get_facecolors()
        return [to_rgb(c) for c in (faces if len(faces) else artist.get_edgecolors())]
    assert isinstance(artist, Patch), f"no colour known for {artist!r}"
    return [to_rgb(artist.get_facecolor())]


def labelled(axes, label: str) -> list:
    """The artists of ``axes`` labelled ``label``: lines, collections, patches and containers."""
    return [artist for ax in axes for artist in (*ax.lines, *ax.collections, *ax.patches, *ax.containers)
            if artist.get_label() == label]


def legend_mismatches(fig: Figure) -> list[str]:
    """Each legend entry of ``fig`` whose swatch is not the one colour of what it labels."""
    problems = []
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    for legend in legends:
        scope = fig.axes if legend.parent is fig else [legend.parent]
        for handle, text in zip(legend.legend_handles, legend.get_texts()):
            label = text.get_text()
            (swatch,) = set(colours(handle))
            drawn = {c for artist in labelled(scope, label) for c in colours(artist)}
            if drawn != {swatch}:
                problems.append(f"{label!r}: legend {swatch}, drawn {sorted(drawn) or 'nothing'}")
    return problems


def test_every_legend_swatch_has_the_colour_of_what_it_labels(tmp_path, drawn):
    context = synthetic_context(tmp_path)
    sweep_section(context)
    training_curves(context)
    draw_test_split_figures(tmp_path / "arrays")
    assert sorted(drawn) == FIGURE_FUNCTIONS                        # every figure of the report was drawn
    with_legends = {name for name, fig in drawn.items() if fig.legends or any(ax.get_legend() for ax in fig.axes)}
    assert with_legends == WITH_LEGENDS
    mismatches = {name: problems for name, fig in drawn.items() if (problems := legend_mismatches(fig))}
    assert not mismatches


def test_each_bar_of_the_epochs_chart_has_the_legend_colour_of_its_trials_stop_reason(tmp_path, drawn):
    context = synthetic_context(tmp_path)
    sweep_section(context)
    ax = drawn["epochs_per_trial"].axes[0]
    legend = {text.get_text(): colours(handle)[0]
              for handle, text in zip(ax.get_legend().legend_handles, ax.get_legend().get_texts())}
    trials = context.experiment.trials.set_index("trial_id")
    assert set(legend) == set(trials["stop_reason"])
    assert len(set(legend.values())) == len(legend)                 # one colour per stop reason
    names = {round(tick): label.get_text() for tick, label in zip(ax.get_yticks(), ax.get_yticklabels())}
    bars = [bar for container in ax.containers for bar in container]
    assert len(bars) == len(trials)
    for bar in bars:
        trial_id = names[round(bar.get_y() + bar.get_height() / 2)]
        assert to_rgb(bar.get_facecolor()) == legend[trials.loc[trial_id, "stop_reason"]], trial_id
        assert bar.get_width() == trials.loc[trial_id, "epochs"], trial_id


def draw_with_nothing_to_label(directory: Path) -> dict[str, Path]:
    """Figures whose legend would have no entry: a test split of one class (no ROC curve), trials
    without the plotted metric, an experiment without trials."""
    one_class = np.zeros(4, dtype=int)
    return {
        "roc_curves": figures.roc_curves(one_class, np.full((4, 3), 1 / 3), CLASS_NAMES,
                                         {f"auc_{n}": 0.5 for n in CLASS_NAMES}, directory / "roc.png", "roc"),
        "training_curves": figures.training_curves(
            {"t1": pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [1.0, 0.6]})},
            ["macro_f1"], directory / "curves.png"),
        "epochs_per_trial": figures.epochs_per_trial(
            pd.DataFrame({"trial_id": [], "epochs": [], "stop_reason": []}), 5, directory / "epochs.png"),
    }


@pytest.mark.filterwarnings("error")
def test_a_figure_with_nothing_labelled_has_no_legend_and_no_warning(tmp_path, drawn):
    paths = draw_with_nothing_to_label(tmp_path)
    assert all(path.is_file() for path in paths.values())
    assert not [name for name in paths if drawn[name].legends or any(ax.get_legend() for ax in drawn[name].axes)]
