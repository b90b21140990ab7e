"""``python -m sweeps.new FORMAT ROOT``: a starter study file for a researcher's own data.

It surveys the folder as the format's reader will read it (classes and counts, image sizes,
mask values, files that will be left out) and prints a study file (``sweeps.starter``) that
runs unchanged: ``--check-data``, ``--plan``, the sweep, then ``python -m analysis.report``.
The survey lists files and reads image headers; nothing is decoded or cached yet.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trainables.errors import MedsweepError


@dataclass(frozen=True)
class Format:
    """A generic dataset format: where its survey lives and which command-line options it takes
    (``--csv`` …, passed to the survey as keywords of the same name)."""

    module: str
    survey: str
    options: tuple[str, ...]
    layouts: str

    def survey_function(self) -> Callable:
        return getattr(importlib.import_module(self.module), self.survey)


FORMATS = {
    "image_folder": Format("trainables.datasets.image_folder", "survey_image_folder", ("csv",),
                           "ROOT/<class>/*, ROOT/{train,val,test}/<class>/*, or --csv FILE (path,label[,split])"),
    "mask_folder": Format("trainables.datasets.mask_folder", "survey_mask_folder", ("images", "masks"),
                          "ROOT/images/ + ROOT/masks/ paired by file stem (or --images DIR --masks DIR), "
                          "optionally under ROOT/{train,val,test}/"),
    "coco": Format("trainables.datasets.detection.coco_format", "survey_coco", ("annotations",),
                   "a COCO instances JSON (--annotations FILE) with its images, or one JSON per split"),
}
OPTION_HELP = {
    "csv": "image_folder: a CSV of path,label[,split] rows (paths relative to the CSV)",
    "images": "mask_folder: the images folder, relative to ROOT (default images/)",
    "masks": "mask_folder: the masks folder, relative to ROOT (default masks/)",
    "annotations": "coco: the COCO JSON, relative to ROOT (default: the one JSON found)",
}


def build_parser() -> argparse.ArgumentParser:
    formats = "\n".join(f"  {name:13s} {entry.layouts}" for name, entry in FORMATS.items())
    parser = argparse.ArgumentParser(
        prog="python -m sweeps.new", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write a starter study file for your own data, from what is in the folder.",
        epilog=f"formats:\n{formats}\n\nthen:\n"
               "  python -m sweeps.run my_study.yaml --check-data   # the audit\n"
               "  python -m sweeps.run my_study.yaml --plan         # the forecast\n"
               "  python -m sweeps.run my_study.yaml                # the sweep (--smoke: a quick try)\n"
               "  python -m analysis.report runs/<experiment>       # the report\n"
               "docs/own-data.md walks through each format.")
    parser.add_argument("format", choices=sorted(FORMATS), help="how the data is laid out")
    parser.add_argument("root", help="the data folder")
    parser.add_argument("--name", help="the study's name (default: the folder's name)")
    parser.add_argument("-o", "--output", help="write the study here instead of printing it")
    parser.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    for option, text in OPTION_HELP.items():
        parser.add_argument(f"--{option}", help=text)
    return parser


def new_study(format_name: str, root: str, *, name: str | None = None, command: str = "python -m sweeps.new",
              **options: str | None) -> str:
    """The starter study's text for the data at ``root`` in ``format_name``; ``options`` are
    that format's survey options (unset ones left out)."""
    from sweeps.starter import starter_study, study_name

    entry = FORMATS[format_name]
    unused = sorted(key for key, value in options.items() if value is not None and key not in entry.options)
    if unused:
        raise MedsweepError(f"--{unused[0]} does not apply to {format_name}; its options: "
                            f"{', '.join('--' + o for o in entry.options) or 'none'}")
    path = Path(root).expanduser().resolve()
    if not path.is_dir():
        raise MedsweepError(f"{root}: no such folder; give the folder holding your data")
    kept = {key: value for key, value in options.items() if value is not None}
    survey = entry.survey_function()(path, **kept)
    return starter_study(survey, name=study_name(name or path.name), command=command)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = "python -m sweeps.new " + shlex.join(sys.argv[1:] if argv is None else argv)
    options = {option: getattr(args, option) for option in OPTION_HELP}
    if args.output and Path(args.output).exists() and not args.force:
        parser.error(f"{args.output} exists; choose another --output or add --force")
    print(f"Surveying {args.root} as {args.format} …", file=sys.stderr)
    try:
        text = new_study(args.format, args.root, name=args.name, command=command, **options)
    except MedsweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"Wrote {args.output}; next: python -m sweeps.run {args.output} --check-data", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
