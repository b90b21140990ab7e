"""The leakage check run at data preparation: the same image, or nearly the same image, in
more than one split. Exact duplicates are found by the SHA-256 of the file's bytes;
near-duplicates by two 64-bit hashes, either within ``NEAR_DISTANCE`` bits:

* the difference hash (dHash) catches re-encoded, resized, slightly recoloured or slightly
  shifted copies in the same orientation;
* the ring hash catches copies that were flipped or turned, by a right angle or by the small
  angles of augmentation (the "balance by augmentation, then split" mistake of STUDIES.md §5):
  it only looks at the disc inscribed in the image, whose content a turn about the centre
  keeps, through quantities that no turn or flip changes.

Measured for the threshold: augmented copies (``all_inception_nasnet``: brightness/contrast
±10%, rotation ±20°, JPEG 50-100, flips) of real BCCD images are all within 4 ring bits of
their original, of synthetic Taleqani smears 80-95%; among 28,680 pairs of distinct images no
BCCD pair and at most one synthetic pair per image size comes that close, whereas the dHash
of a copy turned by only 5° is already about 12 bits away.

A hash match is only a candidate: distinct images of one kind (smears with a few cells on one
background, chest X-rays with the same anatomy) share enough coarse structure for either hash
to come within 4 bits. A candidate is confirmed when its two images, in grey at a common
``CONFIRM_SIDE`` x ``CONFIRM_SIDE`` and aligned by the best of the eight right-angle turns and
flips, have a normalised correlation of at least ``MIN_SIMILARITY``. Measured on generated
Taleqani (``--class-cue``, 32-96 px) and ChestMNIST (28 and 64 px) sets: planted copies
(JPEG 50-90, resized up or down, flipped, turned by 90/180/270°) score 0.966-1.0; hash
candidates among distinct images at most 0.93. A copy turned by a small angle (augmentation)
stays a candidate only: after the best right-angle alignment it scores like a distinct image.
The result goes into the data audit."""

from __future__ import annotations

import hashlib
import re
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from trainables.datasets.images import decode_rgb

NEAR_DISTANCE = 4
LISTED = 20          # duplicates across splits listed by name in the text audit
EXAMPLES = 10        # groups or dropped images of the leakage policy listed by name
LINE_WIDTH = 200     # no line of the text audit is longer
SPLIT_ORDER = ("train", "val", "test")
# Seconds the leakage work took, kept in the leakage section for the text audit only: the
# audit's record (``DataAudit.to_dict``) is the same for the same data, however fast it was read.
TIMING_KEYS = ("seconds", "grouping_seconds")
NO_SPLIT = "none (dropped while reading)"   # the split of a group none of whose images was kept

RING_SIDE = 64
RING_COUNT = 9
RING_SUBSTEPS = 3
RING_ANGLES = 128
RING_FREQUENCIES = 8
RING_RADII = (0.1, 0.9)
CHUNK = 256

CONFIRM_SIDE = 32
MIN_SIMILARITY = 0.95


@dataclass(frozen=True)
class ImagePrint:
    """What identifies one source image: where it is, its bytes' hash and its look.

    ``rhash`` is the ring hash; a print made without one (None) is compared by its
    difference hash only. ``path`` is the file the image was decoded from, which confirming a
    near-duplicate candidate decodes again (None for an image that lives in an array)."""

    split: str
    source: str
    sha256: str
    dhash: int
    rhash: int | None = None
    path: str | None = None

    @property
    def name(self) -> str:
        return f"{self.split}/{self.source}"


def image_print(split: str, source: str, path: Path, image: np.ndarray) -> ImagePrint:
    """The print of ``image``, decoded from the file at ``path`` (whose bytes are hashed)."""
    return ImagePrint(split=split, source=source, sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                      dhash=difference_hash(image), rhash=ring_hash(image), path=str(path))


def _grey(image: np.ndarray) -> Image.Image:
    """The image in Pillow's 8-bit grey: from RGB (HxWx3), RGBA, or grey (HxW or HxWx1)."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    return Image.fromarray(image).convert("L")


def difference_hash(image: np.ndarray) -> int:
    """64 bits: whether each pixel of a 9 x 8 grey thumbnail is brighter than its right-hand
    neighbour (robust to re-encoding, resizing and small colour shifts, not to turns)."""
    grey = _grey(image).resize((9, 8), Image.Resampling.BILINEAR)
    pixels = np.asarray(grey, dtype=np.int16)
    return int(np.packbits(pixels[:, 1:] > pixels[:, :-1]).view(">u8")[0])


def ring_hash(image: np.ndarray) -> int:
    """64 bits that no flip and no turn about the image's centre changes.

    The grey image, scaled so its shorter side is ``RING_SIDE`` pixels, is sampled on
    ``RING_COUNT`` rings (each the mean of ``RING_SUBSTEPS`` circles) inside the inscribed
    disc. Turning or flipping the image only shifts or reverses each circle's samples, which
    leaves the magnitudes of their Fourier series unchanged; the bits say, for each of the
    first ``RING_FREQUENCIES`` magnitudes (0 being the circle's mean brightness), whether it
    grows from one ring to the next outer one. Comparisons rather than values make the bits
    robust to brightness, contrast and re-encoding."""
    grey = np.asarray(_grey(image), dtype=np.float32)
    height, width = grey.shape
    scale = RING_SIDE / min(height, width)
    width, height = max(RING_SIDE, round(width * scale)), max(RING_SIDE, round(height * scale))
    grey = cv2.resize(grey, (width, height), interpolation=cv2.INTER_AREA)
    radii = np.linspace(*RING_RADII, RING_COUNT * RING_SUBSTEPS) * (RING_SIDE / 2 - 1)
    angles = np.arange(RING_ANGLES) * (2 * np.pi / RING_ANGLES)
    x = (width - 1) / 2 + radii[:, None] * np.cos(angles)
    y = (height - 1) / 2 + radii[:, None] * np.sin(angles)
    circles = _bilinear(grey, x, y)
    magnitudes = np.abs(np.fft.rfft(circles, axis=1))[:, :RING_FREQUENCIES]
    rings = magnitudes.reshape(RING_COUNT, RING_SUBSTEPS, RING_FREQUENCIES).mean(axis=1)
    return int(np.packbits((rings[1:] > rings[:-1]).T).view(">u8")[0])


def _bilinear(grey: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``grey`` sampled at the (inside) points ``x``, ``y`` by bilinear interpolation; exact
    in floating point, so a flipped image gives exactly the flipped samples."""
    x0 = np.clip(np.floor(x).astype(np.int64), 0, grey.shape[1] - 2)
    y0 = np.clip(np.floor(y).astype(np.int64), 0, grey.shape[0] - 2)
    fx, fy = x - x0, y - y0
    top = (1 - fx) * grey[y0, x0] + fx * grey[y0, x0 + 1]
    bottom = (1 - fx) * grey[y0 + 1, x0] + fx * grey[y0 + 1, x0 + 1]
    return (1 - fy) * top + fy * bottom


def decode_print(item: ImagePrint) -> np.ndarray:
    """The image of a print made from a file, decoded again from that file."""
    if item.path is None:
        raise ValueError(f"{item.name}: its print names no file; pass check_leakage the images by print")
    return decode_rgb(Path(item.path))


def check_leakage(prints: list[ImagePrint], *, max_distance: int = NEAR_DISTANCE,
                  min_similarity: float = MIN_SIMILARITY,
                  pixels: Callable[[ImagePrint], np.ndarray] = decode_print) -> dict:
    """Exact-duplicate groups and confirmed near-duplicate pairs that span different splits.

    ``candidates`` counts the hash matches, ``near_pairs`` those confirmed by their aligned
    similarity (``pixels`` gives a print's image); ``exact`` and ``near`` list every one,
    ``files`` the file of each image they name (for the contact sheet), ``seconds`` the time
    the check took."""
    started = time.perf_counter()
    exact = []
    by_hash: dict[str, list[ImagePrint]] = defaultdict(list)
    for item in prints:
        by_hash[item.sha256].append(item)
    for group in by_hash.values():
        if len({item.split for item in group}) > 1:
            exact.append(sorted(item.name for item in group))
    candidates = near_duplicate_pairs(prints, max_distance)
    near = confirm_pairs(prints, candidates, min_similarity=min_similarity, pixels=pixels)
    named = {name for group in exact for name in group} | {pair[end] for pair in near for end in "ab"}
    files = {item.name: item.path for item in prints if item.name in named and item.path is not None}
    return {"images": len(prints), "max_distance": max_distance, "min_similarity": min_similarity,
            "exact_groups": len(exact), "candidates": len(candidates), "near_pairs": len(near),
            "exact": sorted(exact), "near": near, "files": dict(sorted(files.items())),
            "seconds": round(time.perf_counter() - started, 2)}


def near_duplicate_pairs(prints: list[ImagePrint], max_distance: int, *, across_splits: bool = True) -> list[dict]:
    """Pairs, not byte-identical, whose difference hashes or ring hashes differ in at most
    ``max_distance`` bits, with the smaller of the two distances and the pair's rows in
    ``prints`` (closest first). Only pairs from different splits unless ``across_splits`` is
    off. All pairs are compared, ``CHUNK`` rows at a time against the later prints."""
    count = len(prints)
    if count < 2:
        return []
    dhashes = np.array([item.dhash for item in prints], dtype=np.uint64)
    rhashes = np.array([item.rhash or 0 for item in prints], dtype=np.uint64)
    ringed = np.array([item.rhash is not None for item in prints])
    splits = np.unique([item.split for item in prints], return_inverse=True)[1]
    contents = np.unique([item.sha256 for item in prints], return_inverse=True)[1]
    pairs = []
    for start in range(0, count - 1, CHUNK):
        rows = np.arange(start, min(start + CHUNK, count))[:, None]
        columns = np.arange(start, count)[None, :]
        bits = np.bitwise_count(dhashes[rows] ^ dhashes[columns])
        turned = np.bitwise_count(rhashes[rows] ^ rhashes[columns])
        bits = np.minimum(bits, np.where(ringed[rows] & ringed[columns], turned, 64))
        close = (bits <= max_distance) & (columns > rows) & (contents[rows] != contents[columns])
        if across_splits:
            close &= splits[rows] != splits[columns]
        for i, j in zip(*np.nonzero(close)):
            a, b = prints[start + i], prints[columns[0, j]]
            pairs.append({"a": a.name, "b": b.name, "bits": int(bits[i, j]),
                          "rows": (start + int(i), int(columns[0, j]))})
    return sorted(pairs, key=lambda p: (p["bits"], p["a"], p["b"]))


def confirm_pairs(prints: list[ImagePrint], candidates: list[dict], *, min_similarity: float,
                  pixels: Callable[[ImagePrint], np.ndarray]) -> list[dict]:
    """The candidates whose images' ``aligned_similarity`` reaches ``min_similarity``, each
    with that similarity (rounded to 3 places) and without its rows. Each image involved is
    read and reduced once."""
    thumbnails: dict[int, np.ndarray] = {}

    def thumbnail_of(row: int) -> np.ndarray:
        if row not in thumbnails:
            thumbnails[row] = confirmation_thumbnail(pixels(prints[row]))
        return thumbnails[row]

    confirmed = []
    for pair in candidates:
        similarity = thumbnail_similarity(*(thumbnail_of(row) for row in pair["rows"]))
        if similarity >= min_similarity:
            confirmed.append({"a": pair["a"], "b": pair["b"], "bits": pair["bits"],
                              "similarity": round(similarity, 3)})
    return confirmed


def confirmation_thumbnail(image: np.ndarray) -> np.ndarray:
    """The image in grey at ``CONFIRM_SIDE`` x ``CONFIRM_SIDE`` (aspect not kept, so a turned
    non-square copy still matches), shifted to mean 0 and scaled to norm 1."""
    grey = np.asarray(_grey(image), dtype=np.float32)
    small = cv2.resize(grey, (CONFIRM_SIDE, CONFIRM_SIDE), interpolation=cv2.INTER_AREA)
    small -= small.mean()
    norm = float(np.linalg.norm(small))
    return small / norm if norm else small


def thumbnail_similarity(first: np.ndarray, second: np.ndarray) -> float:
    """The highest normalised correlation of ``first`` with ``second`` turned by 0, 90, 180
    or 270° and flipped or not: 1 for a copy in any of those orientations, whatever its
    brightness and contrast."""
    return max(float(np.sum(first * aligned)) for aligned in _right_angle_variants(second))


def aligned_similarity(first: np.ndarray, second: np.ndarray) -> float:
    """How alike two images are after the best right-angle alignment (see
    ``thumbnail_similarity``); the measure a near-duplicate candidate is confirmed by."""
    return thumbnail_similarity(confirmation_thumbnail(first), confirmation_thumbnail(second))


def _right_angle_variants(image: np.ndarray):
    for quarter_turns in range(4):
        turned = np.rot90(image, quarter_turns)
        yield turned
        yield turned[:, ::-1]


def without_timing(leakage: dict) -> dict:
    """The leakage section without the seconds it took (see ``TIMING_KEYS``)."""
    return {key: value for key, value in leakage.items() if key not in TIMING_KEYS}


def format_leakage(leakage: dict) -> list[str]:
    """Lines for the audit's text form, none longer than ``LINE_WIDTH``: the check's counts,
    time and criterion, the duplicates across splits (each near pair with its hash distance and
    aligned similarity), and what the leakage policy did."""
    if not leakage:
        return []
    lines = [*_check_lines(leakage), *_cross_split_lines(leakage)]
    return lines + (format_policy(leakage) if "policy" in leakage else [])


def _check_lines(leakage: dict) -> list[str]:
    """The check's counts (and time, grouping before the split included), then its criterion."""
    took = ""
    if "seconds" in leakage:
        grouping = leakage.get("grouping_seconds")
        took = (f", in {leakage['seconds'] + (grouping or 0.0):.1f} s"
                + (" (grouping before the split included)" if grouping is not None else ""))
    confirmation = (f" confirmed by aligned similarity ≥ {leakage['min_similarity']}; "
                    f"{leakage['candidates'] - leakage['near_pairs']} hash match(es) rejected"
                    if "min_similarity" in leakage else "")
    return [f"Leakage check over {leakage['images']} images: {leakage['exact_groups']} exact duplicate group(s) "
            f"and {leakage['near_pairs']} near-duplicate pair(s) across splits{took}.",
            f"  Criterion: same SHA-256, or difference hash or ring hash within {leakage['max_distance']} bits "
            f"(the ring hash sees through any flip or turn){confirmation}."]


def _cross_split_lines(leakage: dict) -> list[str]:
    """The first ``LISTED`` exact groups and near pairs across splits, one per line."""
    exact, near = leakage["exact"][:LISTED], leakage["near"][:LISTED]
    lines = [_clip(f"  exact: {' = '.join(group)}") for group in exact]
    lines += [_clip(f"  near ({_near_measures(pair)}): {pair['a']} ~ {pair['b']}") for pair in near]
    shown = len(exact) + len(near)
    if shown < leakage["exact_groups"] + leakage["near_pairs"]:
        lines.append(f"  … {leakage['exact_groups'] + leakage['near_pairs'] - shown} more in data_audit.json")
    return lines


def format_policy(leakage: dict) -> list[str]:
    """What the leakage policy did, in counts and at most ``EXAMPLES`` examples: the groups kept
    together (``group``), the images dropped (``drop``), or nothing (``warn``)."""
    policy, actions = leakage["policy"], leakage.get("actions", [])
    if policy == "group" and "groups" in leakage:
        return _group_lines(leakage)
    if not actions:
        return [f"Leakage policy {policy}: nothing moved or dropped."]
    heads = {"drop": f"dropped {len(actions)} image(s), each a duplicate of one kept in an earlier split",
             "group": f"{len(actions)} group(s) of duplicates, each kept in one split"}
    return [f"Leakage policy {policy}: {heads.get(policy, f'{len(actions)} action(s)')}:", *_examples(actions)]


def _group_lines(leakage: dict) -> list[str]:
    """The ``group`` policy in counts: groups per split, how their links were found and how
    alike the near pairs are, how many are neighbouring files, then example groups."""
    groups = leakage["groups"]
    if not groups:
        return ["Leakage policy group: no duplicates found before splitting, so nothing was kept together."]
    links = [link for group in groups for link in group["links"]]
    per_split = Counter(group["split"] for group in groups)
    unkept = per_split.pop(NO_SPLIT, 0)
    splits = ", ".join(f"{count} {split}" for split, count in sorted(per_split.items(), key=_split_rank))
    splits += f"; {unkept} all dropped while reading" if unkept else ""
    across = leakage.get("exact_groups", 0) + leakage.get("near_pairs", 0)
    kinds = Counter(link["kind"] for link in links)
    similarity = sorted(link["similarity"] for link in links if link["kind"] == "near")
    alike = (f"; aligned similarity of the near pairs: median {statistics.median(similarity):.3f} "
             f"(min {similarity[0]:.3f}, max {similarity[-1]:.3f})" if similarity else "")
    return [f"Leakage policy group: {len(groups)} group(s) of {sum(len(g['members']) for g in groups)} images "
            f"found before splitting (the check's criterion), each kept in one split, so {across} cross the splits.",
            f"  Groups per split: {splits}.",
            f"  Links: {kinds['exact']} exact copy pair(s) (same SHA-256), {kinds['near']} near pair(s){alike}.",
            *_neighbour_lines(links),
            "  Full list: data_audit.json, leakage_groups.csv; contact sheet: leakage_groups.png",
            "  Examples, least similar first:",
            *_examples([_group_line(group) for group in sorted(groups, key=_least_similarity)])]


def _neighbour_lines(links: list[dict]) -> list[str]:
    """Why neighbouring files matter, with how many linked pairs are numbered 1 or 2-5 apart in
    one folder; nothing when no pair's names are numbered."""
    gaps = [gap for link in links if (gap := number_gap(link["a"], link["b"])) is not None]
    if not gaps:
        return []
    return [f"  Why: neighbouring file numbers are likely repeats or consecutive fields of one smear, which leak "
            f"if split apart; of {len(links)} grouped pairs, {gaps.count(1)} are numbered 1 apart, "
            f"{sum(2 <= gap <= 5 for gap in gaps)} 2-5 apart."]


def number_gap(first: str, second: str) -> int | None:
    """How far apart the numbers ending two file names of one folder are (None unless both are
    numbered and in the same folder)."""
    numbers = [re.search(r"(\d+)$", Path(name).stem) for name in (first, second)]
    if Path(first).parent != Path(second).parent or not all(numbers):
        return None
    return abs(int(numbers[0].group(1)) - int(numbers[1].group(1)))


def _group_line(group: dict) -> str:
    """One group: its split and links first (a long line is clipped at its end), then its members."""
    members = (" ~ " if len(group["members"]) == 2 else ", ").join(group["members"])
    links = group["links"]
    if len(links) == 1:
        measures = "exact copy" if links[0]["kind"] == "exact" else _near_measures(links[0])
    else:
        similarity = sorted({link["similarity"] for link in links if link["kind"] == "near"})
        spread = (f", similarity {similarity[0]}" + (f"-{similarity[-1]}" if len(similarity) > 1 else "")
                  if similarity else "")
        kinds = Counter(link["kind"] for link in links)
        measures = f"{len(links)} links: {kinds['exact']} exact, {kinds['near']} near{spread}"
    return f"{group['split']} ({measures}): {members}"


def _least_similarity(group: dict) -> tuple[float, list[str]]:
    """Sort key: the group's lowest near-pair similarity (1 for exact copies), then its members."""
    lowest = min((link["similarity"] for link in group["links"] if link["kind"] == "near"), default=1.0)
    return lowest, group["members"]


def _split_rank(item: tuple[str, int]) -> tuple[int, str]:
    """Sort key of a (split, count) item: train, val, test, then any other split by name."""
    split = item[0]
    return (SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER)), split


def _examples(lines: list[str]) -> list[str]:
    """The first ``EXAMPLES`` lines indented (each clipped), and how many more there are."""
    more = [f"  … {len(lines) - EXAMPLES} more in data_audit.json"] if len(lines) > EXAMPLES else []
    return [_clip(f"  {line}") for line in lines[:EXAMPLES]] + more


def _clip(line: str) -> str:
    """``line`` cut to ``LINE_WIDTH`` characters, ending in … when cut."""
    return line if len(line) <= LINE_WIDTH else line[:LINE_WIDTH - 1] + "…"


def _near_measures(pair: dict) -> str:
    similarity = f", similarity {pair['similarity']}" if "similarity" in pair else ""
    return f"{pair['bits']} bits{similarity}"
