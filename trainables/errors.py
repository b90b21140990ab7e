"""One family for every error medsweep raises about a user's input.

The command lines catch ``MedsweepError`` alone and print its message on one line (exit 2);
anything else is a bug in medsweep and keeps its traceback. Each subclass also derives from the
built-in error it used to be (``ValueError``, ``FileNotFoundError`` …), so callers that catch
those keep working.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

USER_ERROR_EXIT = 2
# The shell's code for a command ended by SIGINT (128 + 2).
INTERRUPTED_EXIT = 130


class MedsweepError(Exception):
    """Base of every error about the user's input, data, files or environment."""


def cli_exit_code(action: Callable[[], object]) -> int:
    """Run a command line's ``action``: exit code 0, or the ``MedsweepError``'s message on
    one line of stderr and exit 2, or after Ctrl-C one line and exit 130. Anything else is a
    bug and keeps its traceback."""
    interrupts_raise()
    try:
        action()
    except MedsweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return INTERRUPTED_EXIT
    return 0


def _exit_while_loading(signum, frame) -> None:
    """SIGINT while a command's modules load: one line, exit 130, no traceback."""
    print("\nInterrupted while starting; nothing was run.", file=sys.stderr)
    raise SystemExit(INTERRUPTED_EXIT)


def interrupts_exit_while_loading() -> None:
    """Called by each command's package on import: when Python is locating a ``python -m``
    module (``sys.argv[0]`` is ``-m`` until then), a Ctrl-C while the command's modules load
    exits 130 with one line instead of a ``KeyboardInterrupt`` traceback. The command's
    ``main`` puts Python's own handler back (``interrupts_raise``)."""
    if sys.argv[:1] == ["-m"]:
        signal.signal(signal.SIGINT, _exit_while_loading)


def interrupts_raise() -> None:
    """Ctrl-C raises ``KeyboardInterrupt`` again, for the command to handle, once its modules
    are loaded."""
    if signal.getsignal(signal.SIGINT) is _exit_while_loading:
        signal.signal(signal.SIGINT, signal.default_int_handler)


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
