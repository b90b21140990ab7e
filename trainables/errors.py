"""One family for every error medsweep raises about a user's input.

The command lines catch ``MedsweepError`` alone and print its message on one line (exit 2);
anything else is a bug in medsweep and keeps its traceback. Each subclass also derives from the
built-in error it used to be (``ValueError``, ``FileNotFoundError`` …), so callers that catch
those keep working.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

USER_ERROR_EXIT = 2


class MedsweepError(Exception):
    """Base of every error about the user's input, data, files or environment."""


def cli_exit_code(action: Callable[[], object]) -> int:
    """Run a command line's ``action``: exit code 0, or the ``MedsweepError``'s message on
    one line of stderr and exit 2. Anything else is a bug and keeps its traceback."""
    try:
        action()
    except MedsweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT
    return 0


class UnknownNameError(MedsweepError, KeyError):
    """A name that no registry holds; the message lists the valid names."""

    def __str__(self) -> str:
        # KeyError's own __str__ quotes the message as if it were the missing key.
        return str(self.args[0]) if self.args else ""


class PretrainedWeightsError(MedsweepError, RuntimeError):
    """Pretrained weights were asked for and could not be loaded; the message says how to point
    at a local file or train from scratch."""


class ExperimentNotFoundError(MedsweepError, FileNotFoundError):
    """No experiment where one was named, or none that can be resumed."""


class ExperimentExistsError(MedsweepError, FileExistsError):
    """A new experiment would overwrite an existing one."""


class SearchSpaceError(MedsweepError, ValueError):
    """A search-space file or ``--set`` override that cannot be used."""
