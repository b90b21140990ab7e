"""One YAML search space per sweep; every value carries a comment naming its source."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def search_space_path(filename: str) -> Path:
    return Path(str(resources.files("search_spaces").joinpath(filename)))
