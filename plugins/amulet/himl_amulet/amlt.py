"""Finding and calling Amulet's command line, ``amlt``.

Amulet is not on the public package index, so the plugin never imports it: it
looks for ``amlt`` on PATH and checks that ``amlt --version`` answers before it
asks anything of it.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from himl_kernel.errors import HimlError

INSTALL_HINT = "install Amulet as its documentation says (Microsoft-internal; it is not on PyPI), then amlt --version"
#: Seconds ``amlt --version`` may take before amlt is taken as broken.
VERSION_TIMEOUT_S = 60


@dataclass(frozen=True)
class Amlt:
    """An ``amlt`` executable that answered ``--version``."""

    path: str
    version: str

    def command(self, *args: str) -> list[str]:
        return [self.path, *args]

    def call(self, *args: str, cwd: Path | None = None) -> int:
        """Run ``amlt ARGS`` with this terminal; its exit code."""
        try:
            return subprocess.call(self.command(*args), cwd=cwd)
        except OSError as exc:
            raise HimlError(f"amlt {shlex.join(args)}: could not start {self.path}: {exc.strerror or exc}") from None


def find_amlt() -> Amlt | None:
    """The ``amlt`` on PATH, or None when there is none; a HimlError when it is there but does not answer."""
    path = shutil.which("amlt")
    if path is None:
        return None
    try:
        done = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=VERSION_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HimlError(f"{path} --version did not answer ({type(exc).__name__}); {INSTALL_HINT}") from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise HimlError(
            f"{path} --version failed with exit code {done.returncode}"
            + (f": {said[-1]}" if said else "")
            + f"; {INSTALL_HINT}"
        )
    lines = done.stdout.strip().splitlines()
    return Amlt(path, lines[0].strip() if lines else "unknown version")


def require_amlt() -> Amlt:
    found = find_amlt()
    if found is None:
        raise HimlError(f"amlt is not on PATH; {INSTALL_HINT}")
    return found
