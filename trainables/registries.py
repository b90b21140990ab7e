"""``Registry``: the one type behind every name → entry table in medsweep (sweeps, trainables,
datasets, models, augmentations, report sections).

A registry refuses a name registered twice and answers an unknown name with an
``UnknownNameError`` listing the nearest names first, then the valid ones, so a typo in a config
or on the command line says what would have worked. It iterates in registration order.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Generic, TypeVar

from trainables.errors import UnknownNameError

T = TypeVar("T")
# How many near matches an unknown name's message shows, and how alike they must be (difflib's ratio).
NEAR_MATCHES = 5
NEAR_CUTOFF = 0.6


def near_matches(name: object, names: Iterable[str]) -> list[str]:
    """The names most like ``name`` (at most ``NEAR_MATCHES``, nearest first): what a typo most
    likely meant."""
    return difflib.get_close_matches(str(name), list(names), n=NEAR_MATCHES, cutoff=NEAR_CUTOFF)


def unknown_name_message(kind: str, name: object, names: Iterable[str], *, valid: str | None = None) -> str:
    """``unknown <kind> <name>; near matches: …; valid <kind>s: …``: the near matches among
    ``names``, then ``valid`` (the names themselves, sorted, unless given)."""
    names = list(names)
    near = near_matches(name, names)
    hint = f"; near matches: {', '.join(near)}" if near else ""
    return f"unknown {kind} {name!r}{hint}; valid {kind}s: {valid or ', '.join(sorted(names))}"


class Registry(Generic[T]):
    """Entries of one ``kind`` ("model", "report section" …) by name.

    ``entries`` registers a table at once; ``add`` one entry; ``register(name)`` decorates the
    object to register. ``get(name)`` (or ``registry[name]``) looks a name up.
    """

    def __init__(self, kind: str, *, entries: Mapping[str, T] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        for name, value in (entries or {}).items():
            self.add(name, value)

    def add(self, name: str, value: T) -> T:
        """Register ``value`` as ``name`` and return it; a name already registered is an error."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice; give the new one another name")
        self._entries[name] = value
        return value

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator registering the decorated object itself as ``name``."""
        def decorator(value: T) -> T:
            return self.add(name, value)
        return decorator

    def get(self, name: str) -> T:
        """The entry registered as ``name``; an unknown name lists the nearest names, then the valid ones."""
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(unknown_name_message(self.kind, name, self._entries)) from None

    __getitem__ = get

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def values(self) -> list[T]:
        return list(self._entries.values())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
