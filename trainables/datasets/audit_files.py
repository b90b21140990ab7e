"""The data audit's files, written beside an experiment or by ``--check-data``: what the console
showed (``data_audit.txt``), everything (``data_audit.json``), one row per link between
duplicates (``leakage_groups.csv``: the links that joined each group kept in one split, and
the duplicates across splits), a contact sheet of those pairs (``leakage_groups.png``) for a
person to judge the criterion by eye, and a segmentation audit's mask figures.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from matplotlib.figure import Figure

from trainables.datasets.audit import DataAudit
from trainables.datasets.images import CorruptImageError, decode_rgb

AUDIT_TEXT = "data_audit.txt"
AUDIT_JSON = "data_audit.json"
LINKS_CSV = "leakage_groups.csv"
CONTACT_SHEET = "leakage_groups.png"
CSV_COLUMNS = ("dataset", "group", "split", "a", "b", "kind", "bits", "similarity")
SHEET_PAIRS = 40          # pairs on the contact sheet: half the least similar, half the most
SHEET_COLUMNS = 4
THUMBNAIL = 112           # pixels: each image on the contact sheet fits a square this size
CAPTION, GAP, MARGIN, TITLE, DPI = 40, 6, 14, 28, 100   # the sheet's layout, in pixels, and its resolution


class AuditedData(Protocol):
    """What the audit files are written from (``sweeps.data.SweepData`` is one): the audit of
    each data variant, and the text and JSON of them all."""

    audits: Mapping[Any, DataAudit]

    def audit_text(self) -> str: ...

    def audit_json(self) -> dict: ...


def write_audit_files(folder: Path, data: AuditedData) -> list[Path]:
    """Write the audit's files into ``folder`` (created when missing): the text and JSON of the
    whole audit of ``data``, the links of each variant's audit as csv and contact sheet (no
    sheet, and any previous one removed, without links), and the mask figures of each audit
    that has a masks section. The paths written."""
    folder, audits = Path(folder), list(data.audits.values())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / AUDIT_TEXT).write_text(data.audit_text() + "\n")
    (folder / AUDIT_JSON).write_text(json.dumps(data.audit_json(), indent=2))
    rows = [row for audit in audits for row in link_rows(audit)]
    written = [folder / AUDIT_TEXT, folder / AUDIT_JSON, write_links_csv(rows, folder / LINKS_CSV)]
    sheet = folder / CONTACT_SHEET
    if rows:
        written.append(write_contact_sheet(rows, sheet))
    else:
        sheet.unlink(missing_ok=True)
    for audit in audits:
        if audit.masks:
            from trainables.datasets.mask_audit import write_mask_figures
            written += [path for path in write_mask_figures(audit.masks, folder) if path not in written]
    return written


def link_rows(audit: DataAudit) -> list[dict]:
    """One row per link in the audit's leakage section: those that joined each group kept in
    one split (groups G1, G2, … with the split they went to), then the duplicates across splits
    (X1, X2, …, split ``across``; their names carry their splits). Each row has ``file_a`` and
    ``file_b``, the images' files where known (None for an image that lives in an array)."""
    leakage, rows = audit.leakage, []
    for number, group in enumerate(leakage.get("groups", []), 1):
        rows += [_row(audit.dataset, f"G{number}", group["split"], link, group.get("files", {}))
                 for link in group["links"]]
    across = [[{"a": first, "b": other, "kind": "exact", "bits": 0, "similarity": None} for other in others]
              for first, *others in leakage.get("exact", [])]
    across += [[{**pair, "kind": "near"}] for pair in leakage.get("near", [])]
    for number, links in enumerate(across, 1):
        rows += [_row(audit.dataset, f"X{number}", "across", link, leakage.get("files", {})) for link in links]
    return rows


def _row(dataset: str, group: str, split: str, link: dict, files: dict[str, str]) -> dict:
    """One row of ``link_rows``: the link, where it belongs, and its images' files by name."""
    return {"dataset": dataset, "group": group, "split": split,
            **{key: link[key] for key in ("a", "b", "kind", "bits", "similarity")},
            "file_a": files.get(link["a"]), "file_b": files.get(link["b"])}


def write_links_csv(rows: list[dict], path: Path) -> Path:
    """``rows`` (see ``link_rows``) as csv, ``CSV_COLUMNS`` only; an exact copy's similarity,
    never measured, is empty."""
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_contact_sheet(rows: list[dict], path: Path) -> Path:
    """A contact sheet of the linked pairs (each pair once), least similar first: each pair's
    two images side by side, captioned with their names and how they are linked. Beyond
    ``SHEET_PAIRS`` pairs only the least and the most similar are shown, and the title says how
    many were left out. The images are laid out in one array drawn unscaled, which keeps this
    fast; matplotlib only adds the text."""
    unique: dict[tuple[str, str], dict] = {}
    for row in rows:
        unique.setdefault((row["a"], row["b"]), row)
    pairs = sorted(unique.values(), key=_similarity)
    shown = pairs if len(pairs) <= SHEET_PAIRS else pairs[:SHEET_PAIRS // 2] + pairs[-(SHEET_PAIRS // 2):]
    cell_width, cell_height = 2 * THUMBNAIL + GAP + 2 * MARGIN, CAPTION + THUMBNAIL + MARGIN
    width, height = SHEET_COLUMNS * cell_width, TITLE + math.ceil(len(shown) / SHEET_COLUMNS) * cell_height
    canvas = np.full((height, width, 3), 255, np.uint8)
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    for index, pair in enumerate(shown):
        left = index % SHEET_COLUMNS * cell_width + MARGIN
        top = TITLE + index // SHEET_COLUMNS * cell_height + CAPTION
        canvas[top:top + THUMBNAIL, left:left + 2 * THUMBNAIL + GAP] = side_by_side(pair["file_a"], pair["file_b"])
        figure.text((left + THUMBNAIL + GAP / 2) / width, 1 - (top - 3) / height, _caption(pair), ha="center",
                    va="bottom", fontsize=6.5)
    figure.figimage(canvas, origin="upper")
    left_out = len(pairs) - len(shown)
    figure.text(0.5, 1 - 8 / height, f"{len(pairs)} linked pair(s) of duplicates (all in {LINKS_CSV}), least "
                f"similar first" + (f"; the {len(shown) // 2} least and {len(shown) // 2} most similar shown, "
                                    f"{left_out} left out" if left_out else ""), ha="center", va="top", fontsize=9)
    figure.savefig(path, dpi=DPI)
    return path


def _similarity(pair: dict) -> tuple[float, str, str]:
    """Sort key: the pair's aligned similarity (an exact copy counts as 1), then its names."""
    return (1.0 if pair["similarity"] is None else pair["similarity"]), pair["a"], pair["b"]


def _caption(pair: dict) -> str:
    how = ("exact copy (same SHA-256)" if pair["kind"] == "exact"
           else f"{pair['bits']} bits, similarity {pair['similarity']:.3f}")
    return f"{pair['a'][-45:]}\n{pair['b'][-45:]}\n{pair['group']} ({pair['split']}): {how}"


def side_by_side(*files: str | None) -> np.ndarray:
    """The images of ``files`` (see ``thumbnail``) left to right with a white gap between them."""
    gap = np.full((THUMBNAIL, GAP, 3), 255, np.uint8)
    return np.concatenate([part for file in files for part in (gap, thumbnail(file))][1:], axis=1)


def thumbnail(file: str | None) -> np.ndarray:
    """The image of ``file`` scaled to fit a ``THUMBNAIL`` pixel square, centred on white; a grey
    square for an image without a file or whose file does not decode."""
    try:
        image = decode_rgb(Path(file)) if file else None
    except (CorruptImageError, OSError):
        image = None
    if image is None:
        return np.full((THUMBNAIL, THUMBNAIL, 3), 160, np.uint8)
    square = np.full((THUMBNAIL, THUMBNAIL, 3), 255, np.uint8)
    scale = THUMBNAIL / max(image.shape[:2])
    height, width = (max(1, round(side * scale)) for side in image.shape[:2])
    top, left = (THUMBNAIL - height) // 2, (THUMBNAIL - width) // 2
    square[top:top + height, left:left + width] = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return square
