"""Figures of a segmentation audit's masks section, written next to the audit so a person can
judge the mask rule: the distribution of cell fractions over every pair (with the near-empty
cut-off marked) and example pairs across that distribution (Original, Segmented, mask).

The masks section is made by ``taleqani_segmentation.mask_section``; its examples name the
files, so the figures decode them again rather than storing pixels in the audit.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)
import numpy as np  # noqa: E402

from trainables.datasets.images import CorruptImageError, decode_rgb  # noqa: E402

FRACTIONS_FIGURE = "mask_fractions.png"
EXAMPLES_FIGURE = "mask_examples.png"


def write_mask_figures(masks: dict, folder: Path) -> list[Path]:
    """Write ``mask_fractions.png`` and ``mask_examples.png`` into ``folder``; the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = [_fractions_figure(masks, folder / FRACTIONS_FIGURE)]
    if masks.get("examples"):
        written.append(_examples_figure(masks, folder / EXAMPLES_FIGURE))
    return written


def _fractions_figure(masks: dict, path: Path) -> Path:
    edges = np.asarray(masks["histogram"]["edges"], dtype=float)
    counts = np.asarray(masks["histogram"]["counts"], dtype=float)
    figure, axes = plt.subplots(figsize=(7, 3.2))
    if len(counts):
        axes.bar(edges[:-1] * 100, counts, width=np.diff(edges) * 100, align="edge", color="#4c72b0",
                 edgecolor="white", label="pairs")
        filled = np.flatnonzero(counts)
        axes.set_xlim(0, edges[filled[-1] + 1] * 100 * 1.1 if len(filled) else 100)
    cut = masks["empty_below"] * 100
    axes.axvline(cut, color="#c44e52", linestyle="--",
                 label=f"near-empty below {cut:g}% ({len(masks['near_empty'])} pairs, empty_masks={masks['policy']})")
    axes.set_xlabel("cell pixels in the mask (% of the image)")
    axes.set_ylabel("pairs")
    axes.set_yscale("symlog", linthresh=10)
    axes.set_title("Foreground fraction of every decoded mask")
    axes.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _examples_figure(masks: dict, path: Path) -> Path:
    from trainables.datasets.taleqani_segmentation import cell_mask

    examples = masks["examples"]
    figure, grid = plt.subplots(len(examples), 3, figsize=(6.6, 2.2 * len(examples)), squeeze=False)
    for row, example in zip(grid, examples):
        try:
            original, segmented = decode_rgb(Path(example["original"])), decode_rgb(Path(example["segmented"]))
        except (CorruptImageError, OSError) as exc:
            row[0].text(0, 0.5, f"{example['source']}: {exc}", fontsize=7)
            for axes in row:
                axes.axis("off")
            continue
        panels = (original, segmented, cell_mask(segmented))
        titles = (f"{example['source']}", "Segmented", f"mask: {example['fraction']:.2%} cell")
        for axes, panel, title in zip(row, panels, titles):
            axes.imshow(panel, cmap="gray" if panel.ndim == 2 else None, interpolation="nearest")
            axes.set_title(title, fontsize=7)
            axes.axis("off")
    figure.suptitle("Example pairs from the emptiest mask to the fullest", fontsize=9)
    figure.tight_layout(rect=(0, 0, 1, 0.985))
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
