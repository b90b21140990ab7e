"""Continuous search ranges: what ``--search optuna`` draws for an axis that declares
``loguniform``, ``uniform``, ``int`` or ``choice`` (see ``sweeps.space`` for the YAML form),
checked when the search space is read."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trainables.errors import SearchSpaceError

RANGE_KINDS = ("loguniform", "uniform", "int", "choice")
AXIS_KEYS = ("values", "log", *RANGE_KINDS)
RANGE_SYNTAX = ("{loguniform: [low, high]}, {uniform: [low, high]}, {int: [low, high]} (log: true allowed) "
                "or {choice: [a, b, ...]}, optionally with values: [...] for the grid")


@dataclass(frozen=True)
class Range:
    """What a sampler (``--search optuna``) draws for one axis, declared in ``source``.

    ``bounds`` is (low, high), both included, for ``loguniform``, ``uniform`` and ``int``, and
    the categories for ``choice``; ``log`` draws whole numbers log-uniformly (``int`` only).
    Checked on construction, so a reversed, infinite or non-positive log range fails while the
    search space is read, not in the middle of a sweep.
    """

    axis: str
    kind: str
    bounds: tuple
    log: bool = False
    source: str = ""

    def __post_init__(self) -> None:
        where = f"{self.source}: grid.{self.axis}"
        if self.kind not in RANGE_KINDS:
            raise SearchSpaceError(f"{where}: unknown range {self.kind!r}; write {RANGE_SYNTAX}")
        if not isinstance(self.log, bool):
            raise SearchSpaceError(f"{where}: log must be true or false, got {self.log!r}")
        if self.log and self.kind != "int":
            raise SearchSpaceError(f"{where}: log: true applies to int ranges only; for real numbers write "
                                   f"{{loguniform: [low, high]}}")
        if self.kind == "choice":
            _check_choices(where, self.bounds)
        else:
            _check_bounds(where, self.kind, self.bounds, self.log or self.kind == "loguniform")

    @classmethod
    def from_mapping(cls, axis: str, raw: Mapping[str, Any], source: str) -> Range:
        """The range of an axis mapping such as ``{values: [...], loguniform: [1.0e-5, 1.0e-2]}``."""
        kinds = [k for k in RANGE_KINDS if k in raw]
        if len(kinds) != 1:
            raise SearchSpaceError(f"{source}: grid.{axis} must declare exactly one range, got "
                                   f"{kinds or 'none'} in {dict(raw)!r}; write {RANGE_SYNTAX}")
        bounds = raw[kinds[0]]
        if not isinstance(bounds, list):
            raise SearchSpaceError(f"{source}: grid.{axis}.{kinds[0]} must be a list, got {bounds!r}; "
                                   f"write {RANGE_SYNTAX}")
        numbers = bounds if kinds[0] == "choice" else [yaml_number(b) if isinstance(b, str) else b for b in bounds]
        return cls(axis=axis, kind=kinds[0], bounds=tuple(numbers), log=raw.get("log", False), source=source)

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one a sampler could draw (so the grid's values stay inside)."""
        if self.kind == "choice":
            return value in self.bounds
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and not isinstance(value, int):
            return False
        return self.bounds[0] <= value <= self.bounds[1]

    def endpoints(self) -> list:
        """The extreme values a trial may get, to validate as configs before Ray starts."""
        return list(self.bounds)

    def tune_domain(self):
        """The Ray Tune sampling object; Tune's integer upper bound is exclusive, hence ``+ 1``."""
        from ray import tune
        low, high = self.bounds[0], self.bounds[-1]
        if self.kind == "loguniform":
            return tune.loguniform(low, high)
        if self.kind == "uniform":
            return tune.uniform(low, high)
        if self.kind == "int":
            return tune.lograndint(low, high + 1) if self.log else tune.randint(low, high + 1)
        return tune.choice(list(self.bounds))

    def to_dict(self) -> dict:
        """The YAML form, for ``sweep.json`` (``from_mapping`` reads it back)."""
        return {self.kind: list(self.bounds), **({"log": True} if self.log else {})}


def _check_choices(where: str, choices: tuple) -> None:
    """At least one category, each a plain value (what Optuna's categorical distribution takes)."""
    if not choices or not all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
        raise SearchSpaceError(f"{where}: choice must list at least one plain value (number, text, true/false), "
                               f"got {list(choices)!r}")
    if len(set(choices)) != len(choices):
        raise SearchSpaceError(f"{where}: choice lists a value twice, got {list(choices)!r}; list each once")


def _check_bounds(where: str, kind: str, bounds: tuple, log: bool) -> None:
    """Two finite numbers, low < high, whole numbers for ``int``, low > 0 on a log scale."""
    number = int if kind == "int" else (int, float)
    if (len(bounds) != 2 or any(isinstance(b, bool) or not isinstance(b, number) for b in bounds)
            or not all(math.isfinite(b) for b in bounds)):
        kind_text = "whole numbers" if kind == "int" else "finite numbers"
        raise SearchSpaceError(f"{where}: {kind} needs [low, high], two {kind_text}, got {list(bounds)!r}")
    if not bounds[0] < bounds[1]:
        raise SearchSpaceError(f"{where}: {kind} needs low < high, got {list(bounds)!r}; swap them, or put a "
                               f"single value under fixed: instead")
    if log and bounds[0] <= 0:
        raise SearchSpaceError(f"{where}: a log-scale range needs a positive low bound, got {list(bounds)!r}; "
                               f"use uniform for ranges that include 0")


def yaml_number(text: str) -> Any:
    """YAML 1.1 reads ``1e-3`` as a string; numbers written that way are meant as floats."""
    try:
        return float(text)
    except ValueError:
        return text
