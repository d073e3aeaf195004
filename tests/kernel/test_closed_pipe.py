"""Any himl command whose reader goes away (`himl ... | head -1`) ends quietly, as `cat` does."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ..conftest import HIML


@pytest.mark.parametrize(
    "command",
    [
        ("models",),
        ("plugins",),
        ("run", "--model", "PlainHelloWorld", "--dry-run"),
        ("run", "--model", "PlainHelloWorld", "--help"),
    ],
)
def test_a_closed_stdout_ends_the_command_without_a_traceback(command: tuple[str, ...], tmp_path: Path) -> None:
    env = {**os.environ, "HIML_HOME": str(tmp_path / "home")}
    process = subprocess.Popen(
        [HIML, *command], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before the command writes its first line
    stderr = process.stderr.read()
    code = process.wait(timeout=120)
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert code == 141, (code, stderr)  # the shell's status for a process ended by SIGPIPE
