"""The leakage check run at data preparation: the same image, or nearly the same image, in
more than one split. Exact duplicates are found by the SHA-256 of the file's bytes;
near-duplicates (re-encoded, resized or slightly recoloured copies) by a 64-bit difference hash
within ``NEAR_DISTANCE`` bits. The result goes into the data audit."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

NEAR_DISTANCE = 4
LISTED = 20


@dataclass(frozen=True)
class ImagePrint:
    """What identifies one source image: where it is, its bytes' hash and its look."""

    split: str
    source: str
    sha256: str
    dhash: int


def image_print(split: str, source: str, path: Path, image: np.ndarray) -> ImagePrint:
    return ImagePrint(split=split, source=source, sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                      dhash=difference_hash(image))


def difference_hash(image: np.ndarray) -> int:
    """64 bits: whether each pixel of a 9 x 8 grey thumbnail is brighter than its right-hand
    neighbour (robust to re-encoding, resizing and small colour shifts)."""
    grey = Image.fromarray(image).convert("L").resize((9, 8), Image.Resampling.BILINEAR)
    pixels = np.asarray(grey, dtype=np.int16)
    return int(np.packbits(pixels[:, 1:] > pixels[:, :-1]).view(">u8")[0])


def check_leakage(prints: list[ImagePrint], *, max_distance: int = NEAR_DISTANCE) -> dict:
    """Exact-duplicate groups and near-duplicate pairs that span different splits."""
    exact = []
    by_hash: dict[str, list[ImagePrint]] = defaultdict(list)
    for item in prints:
        by_hash[item.sha256].append(item)
    for group in by_hash.values():
        if len({item.split for item in group}) > 1:
            exact.append(sorted(f"{item.split}/{item.source}" for item in group))
    near = near_duplicate_pairs(prints, max_distance)
    return {"images": len(prints), "max_distance": max_distance, "exact_groups": len(exact),
            "near_pairs": len(near), "exact": sorted(exact)[:LISTED], "near": near[:LISTED]}


def near_duplicate_pairs(prints: list[ImagePrint], max_distance: int) -> list[dict]:
    """Pairs from different splits, not byte-identical, whose hashes differ in at most
    ``max_distance`` bits (closest first)."""
    if len(prints) < 2:
        return []
    hashes = np.array([item.dhash for item in prints], dtype=np.uint64)
    pairs = []
    for i in range(len(prints) - 1):
        differing = np.bitwise_xor(hashes[i + 1:], hashes[i])
        distances = np.unpackbits(differing.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)
        for offset in np.flatnonzero(distances <= max_distance):
            a, b = prints[i], prints[i + 1 + offset]
            if a.split != b.split and a.sha256 != b.sha256:
                pairs.append({"a": f"{a.split}/{a.source}", "b": f"{b.split}/{b.source}",
                              "bits": int(distances[offset])})
    return sorted(pairs, key=lambda p: (p["bits"], p["a"], p["b"]))


def format_leakage(leakage: dict) -> list[str]:
    """Lines for the audit's text form."""
    if not leakage:
        return []
    lines = [f"Leakage check over {leakage['images']} images: {leakage['exact_groups']} exact duplicate group(s) "
             f"and {leakage['near_pairs']} near-duplicate pair(s) (difference hash within "
             f"{leakage['max_distance']} bits) across splits."]
    lines += [f"  exact: {' = '.join(group)}" for group in leakage["exact"]]
    lines += [f"  near ({pair['bits']} bits): {pair['a']} ~ {pair['b']}" for pair in leakage["near"]]
    shown = len(leakage["exact"]) + len(leakage["near"])
    if shown < leakage["exact_groups"] + leakage["near_pairs"]:
        lines.append(f"  … {leakage['exact_groups'] + leakage['near_pairs'] - shown} more in data_audit.json's counts")
    return lines
