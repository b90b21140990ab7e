"""The built-in studies: every study file in ``search_spaces/``, loaded and validated
(``sweeps.study_file.load_study``) on first use and registered under its name."""

from __future__ import annotations

from functools import cache

from search_spaces import builtin_study_paths
from sweeps.spec import SweepSpec
from sweeps.study_file import StudyFileError, is_study_path, load_study
from trainables.registries import Registry


@cache
def builtin_sweeps() -> Registry[SweepSpec]:
    """The registry of the built-in studies; a file whose study is named otherwise is an error."""
    sweeps: Registry[SweepSpec] = Registry("sweep")
    for path in builtin_study_paths():
        spec = load_study(path, search_space=path.name)
        if spec.name != path.stem:
            raise StudyFileError(f"{path}: study.name: a built-in study is named after its file; "
                                 f"expected {path.stem!r}, got {spec.name!r}")
        sweeps.add(spec.name, spec)
    return sweeps


def __getattr__(name: str) -> Registry[SweepSpec]:
    """``SWEEPS``: the built-in studies, loaded when first asked for (the CLI's usage error
    lists their names without loading them, see ``builtin_study_paths``)."""
    if name == "SWEEPS":
        return builtin_sweeps()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_sweep(name: str) -> SweepSpec:
    """The study a command line names: the study file at ``name`` when it is a path (``*.yaml``,
    ``*.yml`` or anything with a ``/``), else the built-in study ``name`` (an unknown one lists
    the valid ones)."""
    return load_study(name) if is_study_path(name) else builtin_sweeps().get(name)
