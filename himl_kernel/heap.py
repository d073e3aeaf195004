"""The cyclic garbage collector in the ``himl`` command's own process.

A ``himl run`` process imports torch, Lightning and MLflow: millions of
objects that live until the process ends. Left alone, the cyclic garbage
collector walks the whole growing heap again and again while they load (1 to
1.5 seconds of a HelloWorld run on a laptop-class machine) and again while
the interpreter shuts down (1.5 to 2.5 seconds). The command line therefore

- loads the big libraries with the collector paused (:func:`loading`), then
  freezes what they created (``gc.freeze()``: those objects are no longer
  walked, and are still freed by reference counting like any other), and
  turns the collector back on before any model code, job or wait runs;
- freezes the heap once more when it is done (:func:`prepare_exit`).

Only the command line does this (:func:`mark_command_line`); a program that
calls himl as a library keeps its collector as it set it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Process state by nature, as the collector is: whether this process is the ``himl`` command.
_COMMAND_LINE: list[bool] = [False]


def mark_command_line() -> None:
    """Record that this process is the ``himl`` command line (the console script, ``python -m himl_kernel``)."""
    _COMMAND_LINE[0] = True


@contextmanager
def loading() -> Iterator[None]:
    """Import big libraries inside this block: on the command line, without the collector's passes.

    What the block created is frozen out of later passes when it ends, and
    the collector is back on as before; elsewhere, or when the collector is
    already off, the block changes nothing.
    """
    if not (_COMMAND_LINE[0] and gc.isenabled()):
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def prepare_exit() -> None:
    """Spare the ending command-line process the collector's passes over everything still alive.

    Frozen objects are still freed by reference counting as the modules are
    torn down (open files are flushed and closed, ``__del__`` runs) and atexit
    handlers run as before; only garbage in reference cycles among them is
    left to the operating system, which reclaims the process's memory anyway.
    """
    if _COMMAND_LINE[0]:
        gc.freeze()
