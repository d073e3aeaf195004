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
