"""Child processes that end with the ``himl`` process that started them."""

from __future__ import annotations

import contextlib
import signal
import sys


def die_with_parent(signum: int = signal.SIGKILL) -> None:
    """In a child, before exec (``preexec_fn``): on Linux, receive ``signum`` when the launching process dies.

    This covers the one way a parent cannot clean up after itself, being
    killed with SIGKILL; elsewhere it does nothing.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signum)
