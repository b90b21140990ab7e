"""``python -m trainables.datasets.download {bccd,taleqani} DIR``: download a dataset into
``DIR/BCCD_Dataset`` or ``DIR/ALL_Taleqani``, every file verified against its pinned manifest,
then pass ``--data-dir DIR`` to a sweep. BCCD comes from GitHub; Taleqani from Kaggle through
the optional ``kaggle`` client and the user's Kaggle credentials. Errors are one line, exit 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from trainables.datasets.download import download_bccd
from trainables.datasets.download.kaggle_download import download_taleqani
from trainables.errors import cli_exit_code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trainables.datasets.download",
        description="Download a dataset into DIR and verify every file against medsweep's pinned SHA-256 "
                    "manifest. An existing dataset folder in DIR is never replaced.",
        epilog="taleqani needs the kaggle package (pip install kaggle) and Kaggle credentials: kaggle.json "
               "from https://www.kaggle.com/settings/api in ~/.kaggle/ (or $KAGGLE_CONFIG_DIR), or the "
               "KAGGLE_USERNAME and KAGGLE_KEY environment variables.")
    parser.add_argument("dataset", choices=("bccd", "taleqani"),
                        help="bccd: BCCD_Dataset from GitHub (Shenggan/BCCD_Dataset, pinned commit); "
                             "taleqani: ALL_Taleqani from Kaggle (mehradaria/leukemia)")
    parser.add_argument("directory", type=Path, metavar="DIR",
                        help="where to put the dataset folder; pass the same DIR as --data-dir afterwards")
    return parser


def download(dataset: str, directory: Path) -> str:
    """Download ``dataset`` into ``directory``; the line that says what was done."""
    if dataset == "taleqani":
        return download_taleqani(directory).summary()
    target = download_bccd(directory)
    return f"Downloaded BCCD, verified every file against the pinned manifest and wrote {target}. " \
           f"Use it with --data-dir {directory}."


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli_exit_code(lambda: print(download(args.dataset, args.directory)))


if __name__ == "__main__":
    raise SystemExit(main())
