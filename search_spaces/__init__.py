"""The built-in studies: one study file per sweep (``sweeps.study_file``); every value carries a
comment naming its source."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def search_space_path(filename: str) -> Path:
    """A built-in study's file by its file name, or a study file's own path (absolute)."""
    if Path(filename).is_absolute():
        return Path(filename)
    return Path(str(resources.files("search_spaces").joinpath(filename)))


def builtin_study_paths() -> list[Path]:
    """The built-in study files, by name; each file's name is its study's name."""
    return sorted(Path(str(resources.files("search_spaces"))).glob("*.yaml"))
