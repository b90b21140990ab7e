"""The report's figures, each drawn with matplotlib (no display needed) and saved as PNG."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402

from trainables.metrics import row_normalised  # noqa: E402

REASON_COLOURS = {"completed": "#2da44e", "early_stopped_patience": "#0969da", "stopped_by_asha": "#9a6700",
                  "diverged": "#cf222e", "errored": "#8250df", "interrupted": "#6e7781", "not_started": "#afb8c1"}
UNKNOWN_REASON_COLOUR = "#6e7781"


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def confusion_matrices(cm: np.ndarray, class_names: tuple[str, ...], path: Path, title: str) -> Path:
    """Counts and row-normalised matrices side by side."""
    normalised = row_normalised(cm)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, values, name, fmt in ((axes[0], cm, "counts", "{:.0f}"), (axes[1], normalised, "row-normalised", "{:.1%}")):
        ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(class_names)):
            for j in range(len(class_names)):
                ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center",
                        color="white" if normalised[i, j] > 0.6 else "black", fontsize=11)
        ax.set_xticks(range(len(class_names)), class_names)
        ax.set_yticks(range(len(class_names)), class_names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(name)
    fig.suptitle(title)
    return _save(fig, path)


def roc_curves(labels: np.ndarray, probabilities: np.ndarray, class_names: tuple[str, ...],
               aucs: dict[str, float], path: Path, title: str) -> Path:
    """One-vs-rest ROC curve per class, each labelled with its AUC."""
    from sklearn.metrics import roc_curve

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for index, name in enumerate(class_names):
        positive = labels == index
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, probabilities[:, index])
        ax.plot(fpr, tpr, label=f"{name} (AUC {aucs[f'auc_{name}']:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    _legend(ax, loc="lower right")
    return _save(fig, path)


def training_curves(histories: dict[str, pd.DataFrame], metrics: list[str], path: Path) -> Path:
    """Each validation metric, then train/val loss, per epoch of each labelled trial."""
    fig, axes = plt.subplots(1, len(metrics) + 1, figsize=(5.5 * (len(metrics) + 1), 4))
    for (label, history), colour in zip(histories.items(), plt.cm.tab10.colors):
        for ax, metric in zip(axes, metrics):
            if metric in history:
                ax.plot(history["epoch"], history[metric], marker="o", ms=3, color=colour, label=label)
        axes[-1].plot(history["epoch"], history["train_loss"], color=colour, ls="--", label=f"{label} train")
        axes[-1].plot(history["epoch"], history["val_loss"], color=colour, label=f"{label} val")
    for ax, metric in zip(axes, metrics):
        ax.set_ylabel(metric)
    _legend(axes[0], fontsize=8)
    axes[-1].set_ylabel("loss (dashed: train, solid: val)")
    axes[-1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    return _save(fig, path)


def mask_overlays(images: np.ndarray, truth: np.ndarray, predicted: np.ndarray, dice: np.ndarray, path: Path,
                  columns: int = 4, class_names: tuple[str, ...] | None = None) -> Path:
    """Images with their true and predicted masks, titled by Dice. Binary masks (bool, no
    ``class_names``): the true mask outlined green and the predicted one tinted red. Class-index
    masks of ``class_names`` (index 0 the background): every foreground class in its own colour
    (``class_colours``, in a legend), its true region outlined and its predicted region tinted,
    titled by the mean Dice over the foreground classes."""
    rows = math.ceil(len(images) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.8 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, true_mask, mask, score in zip(axes.ravel(), images, truth, predicted, dice):
        show_image(ax, image)
        if class_names is None:
            ax.imshow(np.ma.masked_where(~mask, mask), cmap="autumn", alpha=0.35)
            if true_mask.any():
                ax.contour(true_mask.astype(float), levels=[0.5], colors="#2da44e", linewidths=1.5)
            ax.set_title(f"Dice {score:.3f}", fontsize=9)
        else:
            _class_overlay(ax, true_mask, mask, class_colours(len(class_names)))
            ax.set_title(f"mean Dice {score:.3f}", fontsize=9)
    if class_names is not None:
        handles = [Patch(facecolor=colour, label=name)
                   for name, colour in zip(class_names[1:], class_colours(len(class_names)))]
        fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8, bbox_to_anchor=(0.5, 1.04))
    return _save(fig, path)


def class_colours(num_classes: int) -> list[tuple[float, float, float]]:
    """One distinct RGB colour per foreground class (classes 1..K−1), from matplotlib's tab10
    (tab20 past ten classes)."""
    palette = plt.get_cmap("tab10" if num_classes <= 11 else "tab20")
    return [palette(index % palette.N)[:3] for index in range(num_classes - 1)]


def _class_overlay(ax, truth: np.ndarray, predicted: np.ndarray, colours: list) -> None:
    """Each foreground class's predicted pixels tinted and its true region outlined, in its
    colour (``colours[c - 1]`` for class c)."""
    tint = np.zeros((*predicted.shape, 4))
    for index, colour in enumerate(colours, start=1):
        tint[predicted == index] = (*colour, 0.4)
        if (truth == index).any():
            ax.contour((truth == index).astype(float), levels=[0.5], colors=[colour], linewidths=1.5)
    ax.imshow(tint)


def show_image(ax, image: np.ndarray) -> None:
    """An RGB image as it is, a one-channel (grey) image in grey."""
    if image.ndim == 3 and image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(image)


def prediction_grid(images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                    class_names: tuple[str, ...], path: Path, columns: int = 4) -> Path:
    """Test samples with true class, predicted class and confidence; correct framed green,
    wrong framed red."""
    rows = math.ceil(len(images) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 2.7 * rows))
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, image, label, probs in zip(np.ravel(axes), images, labels, probabilities):
        predicted = int(np.argmax(probs))
        colour = "#2da44e" if predicted == label else "#cf222e"
        show_image(ax, image)
        ax.axis("on")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_edgecolor(colour)
            spine.set_linewidth(4)
        ax.set_title(f"true {class_names[label]}\npred {class_names[predicted]} ({probs[predicted]:.0%})",
                     fontsize=9, color=colour)
    return _save(fig, path)


def hyperparameters_against_metric(trials: pd.DataFrame, axes: list[str], metric: str, path: Path) -> Path:
    """One panel per grid axis: each trial's best metric at its value, coloured by stop reason."""
    axes = axes or ["trial_id"]
    fig, panels = plt.subplots(1, len(axes), figsize=(4 * len(axes), 3.8), squeeze=False)
    column = f"best_{metric}"
    for ax, axis in zip(panels[0], axes):
        key = f"config/{axis}" if f"config/{axis}" in trials else axis
        values = trials[key].map(str)
        order = sorted(values.unique(), key=_numeric_first)
        positions = values.map({v: i for i, v in enumerate(order)})
        jitter = np.linspace(-0.12, 0.12, len(trials)) if len(trials) > 1 else np.zeros(1)
        for reason, colour in REASON_COLOURS.items():
            chosen = (trials["stop_reason"] == reason).to_numpy()
            if chosen.any() and column in trials:
                ax.scatter(positions[chosen] + jitter[chosen], trials.loc[chosen, column], color=colour,
                           label=reason, s=30, alpha=0.85)
        ax.set_xticks(range(len(order)), order, rotation=30)
        ax.set_xlabel(axis)
        ax.grid(alpha=0.3)
    panels[0][0].set_ylabel(column)
    handles, names = panels[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="upper center", ncol=len(names), fontsize=8, bbox_to_anchor=(0.5, 1.06))
    return _save(fig, path)


def _legend(ax, **options) -> None:
    """``ax.legend(**options)`` when ``ax`` has labelled artists: a figure with none (no class
    with both outcomes, no trial, no epoch of the metric) gets no legend rather than
    matplotlib's "No artists with labels found" warning."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**options)


def _numeric_first(text: str):
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def epochs_per_trial(trials: pd.DataFrame, max_epochs: int, path: Path) -> Path:
    """Epochs each trial ran, coloured by why it stopped, against the budget without ASHA.

    The bars of each stop reason are drawn together and labelled with it, so the legend's
    swatch takes its colour from the bars themselves (an empty, labelled bar call gets
    matplotlib's default blue instead)."""
    ordered = trials.sort_values("epochs", kind="stable").reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(ordered) + 1.5))
    reasons = ordered["stop_reason"].astype(str)
    for reason in sorted(set(reasons), key=reason_order):
        chosen = ordered.index[reasons == reason]
        ax.barh(chosen, ordered.loc[chosen, "epochs"], color=reason_colour(reason), label=reason)
    ax.axvline(max_epochs, ls="--", color="grey")
    ax.set_yticks(range(len(ordered)), ordered["trial_id"], fontsize=7)
    ax.set_xlabel(f"epochs run (dashed: max_epochs = {max_epochs})")
    _legend(ax, fontsize=8, loc="lower right")
    return _save(fig, path)


def reason_colour(reason: str) -> str:
    """The colour every figure gives a stop reason (grey for one it does not know)."""
    return REASON_COLOURS.get(reason, UNKNOWN_REASON_COLOUR)


def reason_order(reason: str) -> int:
    """Stop reasons in ``REASON_COLOURS`` order, unknown ones last, for stable legends."""
    order = list(REASON_COLOURS)
    return order.index(reason) if reason in order else len(order)


def estimates_by_label(rows: pd.DataFrame, metric_label: str, path: Path) -> Path:
    """Mean and confidence interval per labelled model (columns label, mean, low, high)."""
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.5))
    y = np.arange(len(rows))
    means = rows["mean"].to_numpy(dtype=float)
    errors = np.vstack([means - rows["low"].to_numpy(dtype=float), rows["high"].to_numpy(dtype=float) - means])
    ax.errorbar(means, y, xerr=np.clip(errors, 0, None), fmt="o", capsize=4, color="#0969da")
    ax.set_yticks(y, rows["label"])
    ax.invert_yaxis()
    ax.set_xlabel(metric_label)
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, path)


def inference_heatmap(grid: pd.DataFrame, metric: str, chosen: dict, path: Path, title: str) -> Path:
    """``metric`` over the inference-time grid (detection confidence × NMS IoU), the chosen
    pair framed."""
    table = grid.pivot_table(index="min_confidence", columns="nms_iou", values=metric)
    fig, ax = plt.subplots(figsize=(1.1 * len(table.columns) + 2.5, 0.55 * len(table.index) + 1.8))
    image = ax.imshow(table.to_numpy(), cmap="viridis", aspect="auto")
    for i, confidence in enumerate(table.index):
        for j, nms in enumerate(table.columns):
            ax.text(j, i, f"{table.iloc[i, j]:.3f}", ha="center", va="center", fontsize=8,
                    color="white" if table.iloc[i, j] < np.nanmean(table.to_numpy()) else "black")
            if math.isclose(confidence, chosen["min_confidence"]) and math.isclose(nms, chosen["nms_iou"]):
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.5))
    ax.set_xticks(range(len(table.columns)), [f"{v:g}" for v in table.columns])
    ax.set_yticks(range(len(table.index)), [f"{v:g}" for v in table.index])
    ax.set_xlabel("NMS IoU threshold")
    ax.set_ylabel("detection minimum confidence")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label=metric)
    return _save(fig, path)


def detection_grid(images: list[np.ndarray], predictions: list[tuple], truths: list[dict], class_names: tuple[str, ...],
                   path: Path, columns: int = 3) -> Path:
    """Test images with predicted boxes (solid, with class and score), predicted masks (tinted)
    and annotated boxes (dashed white); each prediction is (boxes, labels, scores, masks or None)."""
    colours = plt.get_cmap("tab10")
    rows = math.ceil(len(images) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.6 * rows))
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, image, predicted, truth in zip(np.ravel(axes), images, predictions, truths):
        show_image(ax, image)
        for box in truth["boxes"]:
            ax.add_patch(plt.Rectangle(box[:2], box[2] - box[0], box[3] - box[1], fill=False, edgecolor="white",
                                       linestyle="--", linewidth=1))
        boxes, labels, scores, masks = predicted
        for index, (box, label, score) in enumerate(zip(boxes, labels, scores)):
            colour = colours(int(label) % 10)
            if masks is not None:
                ax.imshow(np.ma.masked_where(masks[index] < 0.5, masks[index]),
                          cmap=plt.matplotlib.colors.ListedColormap([colour]), alpha=0.35, vmin=0, vmax=1)
            ax.add_patch(plt.Rectangle(box[:2], box[2] - box[0], box[3] - box[1], fill=False, edgecolor=colour,
                                       linewidth=1.5))
            ax.text(box[0], box[1] - 2, f"{class_names[int(label)]} {score:.2f}", color="white", fontsize=7,
                    bbox={"facecolor": colour, "alpha": 0.8, "pad": 1, "edgecolor": "none"})
        ax.set_title(f"{truth['source']}: {len(boxes)} detected, {len(truth['boxes'])} annotated",
                     fontsize=9)
    return _save(fig, path)


def param_importance(importances: dict[str, float], metric: str, path: Path, *, trials: int) -> Path:
    """Each varying axis's share of the metric's variance over the finished trials, largest on
    top, its value written beside its bar."""
    names = sorted(importances, key=importances.get)
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(names) + 1.6))
    ax.barh(range(len(names)), [importances[n] for n in names], color="#0969da")
    for position, name in enumerate(names):
        ax.text(importances[name] + 0.01, position, f"{importances[name]:.2f}", va="center", fontsize=9)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlim(0, 1.08)
    ax.set_xlabel(f"share of the variance of best {metric} (fANOVA, sums to 1)")
    ax.set_title(f"Parameter importance over {trials} finished trials", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, path)


# How the parallel-coordinates plot draws each stop reason's lines: a trial ASHA stopped stands
# at the budget it got, dashed, so it is not read as a fully trained one.
REASON_LINE_STYLES = {"early_stopped_patience": "-.", "stopped_by_asha": "--"}


def parallel_coordinates(table: pd.DataFrame, reasons: pd.Series, path: Path, *, categories: dict[str, list],
                         log_axes: tuple[str, ...], value_ticks: tuple[str, ...], title: str) -> Path:
    """One line per trial through its value on every column of ``table`` (left to right), on a
    vertical axis per column: categorical for the columns in ``categories`` (their values in that
    order), log-scaled for ``log_axes``, linear otherwise; the numeric columns in ``value_ticks``
    (grid axes) get a tick at each value they took. Lines are coloured and styled by the trial's
    stop reason (``reasons``, aligned with ``table``)."""
    names = list(table.columns)
    fig, host = plt.subplots(figsize=(max(6.5, 1.9 * len(names) + 1.5), 4.8))
    units = np.column_stack([coordinate_axis(host, index, len(names), table[name], categories.get(name),
                                             log=name in log_axes, value_ticks=name in value_ticks)
                             for index, name in enumerate(names)])
    x = np.arange(len(names), dtype=float)
    reasons = reasons.astype(str).to_numpy()
    for reason in sorted(set(reasons), key=reason_order):
        chosen = reasons == reason
        host.add_collection(LineCollection([np.column_stack([x, row]) for row in units[chosen]],
                                           colors=reason_colour(reason),
                                           linestyles=REASON_LINE_STYLES.get(reason, "-"), linewidths=1.6,
                                           alpha=0.85, label=f"{reason} ({int(chosen.sum())})"))
    host.set_xlim(-0.08, len(names) - 1 + 0.08)
    host.set_ylim(0, 1)
    host.set_xticks(x, names, fontsize=9)
    host.set_yticks([])
    for spine in host.spines.values():
        spine.set_visible(False)
    _legend(host, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=4, frameon=False)
    host.set_title(title, fontsize=10)
    return _save(fig, path)


def coordinate_axis(host, index: int, count: int, values: pd.Series, order: list | None, *, log: bool,
                    value_ticks: bool) -> np.ndarray:
    """Draw the vertical axis of column ``index`` (of ``count``) over ``host`` and return where
    each of ``values`` lies on it, from 0 (bottom) to 1 (top), in ``host``'s coordinates."""
    axis = host.twinx()
    axis.set_label(str(values.name))
    axis.spines["right"].set_position(("axes", index / max(count - 1, 1)))
    for side in ("left", "top", "bottom"):
        axis.spines[side].set_visible(False)
    axis.tick_params(axis="y", labelsize=8)
    if order is not None:
        position = {str(v): i for i, v in enumerate(order)}
        axis.set_ylim(-0.5, len(order) - 0.5)
        axis.set_yticks(range(len(order)), [str(v) for v in order])
        return (values.map(lambda v: position[str(v)]).to_numpy(dtype=float) + 0.5) / len(order)
    numbers = values.to_numpy(dtype=float)
    low, high = float(numbers.min()), float(numbers.max())
    scale = np.log10 if log else (lambda v: v)
    span = (scale(high) - scale(low)) or 1.0
    bottom, top = scale(low) - 0.05 * span, scale(high) + 0.05 * span
    if log:
        axis.set_yscale("log")
        axis.set_ylim(10 ** bottom, 10 ** top)
    else:
        axis.set_ylim(bottom, top)
    if value_ticks:
        distinct = np.unique(numbers)
        axis.set_yticks(distinct, [f"{v:g}" for v in distinct])
        axis.yaxis.set_minor_locator(NullLocator())
    return (scale(numbers) - bottom) / (top - bottom)
