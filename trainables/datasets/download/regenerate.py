"""Rewrite a shipped manifest's file list from a copy of its dataset on disk.

    python -m trainables.datasets.download.regenerate taleqani ../shared/data/ALL_Taleqani

hashes every file under the dataset's pinned top-level entries (``MANIFEST_ENTRIES``; hidden
files are skipped) and writes ``manifests/<name>.json`` again with the same metadata (source,
commit, provenance, licence) and the new digests. Run it only on a copy known to be the
upstream one, then review the diff: the manifest is what every later copy is checked against.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from trainables.datasets.download import manifest_resource
from trainables.errors import MedsweepError, cli_exit_code

# The top-level files and folders of each dataset that its manifest pins.
MANIFEST_ENTRIES = {"bccd": ("BCCD", "LICENSE", "test.csv"), "taleqani": ("Original", "Segmented")}
SOURCE_MANIFESTS = Path(__file__).resolve().parents[1] / "manifests"


class ManifestSourceError(MedsweepError, FileNotFoundError):
    """The folder given to hash lacks one of the dataset's pinned entries."""


def folder_digests(root: Path, *, entries: tuple[str, ...]) -> dict[str, str]:
    """The SHA-256 of every non-hidden file under ``root``'s ``entries``, keyed by its path
    relative to ``root`` (``/``-separated), sorted by path."""
    files: list[Path] = []
    for entry in entries:
        top = root / entry
        if not top.exists():
            raise ManifestSourceError(f"{top} does not exist: give the dataset folder, the one holding "
                                      f"{', '.join(entries)}")
        files += [top] if top.is_file() else [p for p in top.rglob("*") if p.is_file()]
    relative = {path.relative_to(root).as_posix(): path for path in files}
    return {name: hashlib.sha256(relative[name].read_bytes()).hexdigest() for name in sorted(relative)
            if not any(part.startswith(".") for part in name.split("/"))}


def regenerated_manifest(name: str, root: Path) -> str:
    """The text of manifest ``name`` with its ``files`` taken from ``root``; every other key
    is kept as shipped. Formatted like the shipped files (one-space indent)."""
    doc = json.loads(manifest_resource(name).read_text())
    doc["files"] = folder_digests(root, entries=MANIFEST_ENTRIES[name])
    return json.dumps(doc, indent=1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trainables.datasets.download.regenerate",
        description="Rewrite a pinned SHA-256 manifest's file list from a copy of the dataset on disk "
                    "(metadata kept). Only for a copy known to be the upstream one.")
    parser.add_argument("name", choices=sorted(MANIFEST_ENTRIES), help="which manifest to rewrite")
    parser.add_argument("root", type=Path, help="the dataset folder (BCCD_Dataset/ or ALL_Taleqani/)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write (default: manifests/<name>.json in the source tree)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = args.out or SOURCE_MANIFESTS / f"{args.name}.json"

    def write() -> None:
        text = regenerated_manifest(args.name, args.root)
        out.write_text(text)
        print(f"Wrote {len(json.loads(text)['files'])} digests of {args.root} to {out}; review the diff.")

    return cli_exit_code(write)


if __name__ == "__main__":
    raise SystemExit(main())
