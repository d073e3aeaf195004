"""Errors the user should read in one line.

:class:`HimlError` is the one exception type the CLI turns into a single line
on stderr and a non-zero exit (the traceback appears with ``--verbose``).
Raise it, or a subclass, for anything the user can fix: a bad name, a missing
folder, a malformed reference. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HimlError(Exception):
    """A problem with the user's input or setup, explained in one line."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split("\n")))

    @property
    def message(self) -> str:
        return str(self)


class UnknownNameError(HimlError, LookupError):
    """A name that is not registered; the message lists the known ones."""

    def __init__(self, kind: str, name: str, known: Iterable[str], hint: str = "") -> None:
        known_sorted = sorted(known)
        self.kind = kind
        self.name = name
        self.known = known_sorted
        close = difflib.get_close_matches(name, known_sorted, n=3, cutoff=0.5)
        parts = [f"unknown {kind} {name!r}"]
        if close:
            parts.append(f"did you mean {', '.join(repr(c) for c in close)}?")
        parts.append(f"known: {', '.join(known_sorted) if known_sorted else '(none)'}")
        message = "; ".join(parts)
        if hint:
            message = f"{message}; {hint}"
        super().__init__(message)


class PluginLoadError(HimlError):
    """A plugin that could not be loaded; raised when a command needs it."""


#: Set to 1 to see the traceback of a HimlError a script did not catch.
ENV_VERBOSE = "HIML_VERBOSE"


def install_one_line_excepthook() -> None:
    """Make a :class:`HimlError` that a user's script does not catch end it with one line, not a traceback.

    For the functions a script calls (``submit_if_needed``, hi-ml's
    ``submit_to_azure_if_needed``): the error still propagates, so a caller
    can catch it; only the interpreter's report of an uncaught one changes,
    to ``himl: error: ...`` on stderr (exit status 1). ``HIML_VERBOSE=1``
    keeps the traceback. Other exceptions go to the previous hook. Installing
    it twice is harmless.
    """
    import os
    import sys

    previous = sys.excepthook
    if getattr(previous, "_himl_one_line", False):
        return

    def hook(kind: type[BaseException], value: BaseException, tb: object) -> None:
        if isinstance(value, HimlError) and os.environ.get(ENV_VERBOSE, "") in ("", "0"):
            print(f"himl: error: {value}", file=sys.stderr)
            return
        previous(kind, value, tb)  # type: ignore[arg-type]

    hook._himl_one_line = True  # type: ignore[attr-defined]
    sys.excepthook = hook
