"""A user's script that calls submit_if_needed ends with one line for a HimlError it does not catch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import sys
from himl_kernel import submit_if_needed
from himl_kernel.errors import HimlError

if sys.argv[1] == "caught":
    try:
        submit_if_needed(argv=["s.py", "--himl-compute", "nosuch"])
    except HimlError as exc:
        print("caught:", type(exc).__name__)
elif sys.argv[1] == "bug":
    try:  # the hook is installed by the first call
        submit_if_needed(argv=["s.py", "--himl-compute", "nosuch"])
    except HimlError:
        pass
    raise ValueError("a bug keeps its traceback")
else:
    submit_if_needed(argv=["s.py", "--himl-compute", "nosuch"])
"""


def _run(tmp_path: Path, mode: str, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "s.py").write_text(SCRIPT, encoding="utf-8")
    full = {key: value for key, value in os.environ.items() if key != "HIML_VERBOSE"}
    full.update({"HIML_HOME": str(tmp_path / "home"), **env})
    return subprocess.run(
        [sys.executable, "s.py", mode], cwd=tmp_path, env=full, capture_output=True, text=True, timeout=120
    )


def test_an_uncaught_himl_error_is_one_line_and_a_failure(tmp_path: Path) -> None:
    done = _run(tmp_path, "uncaught")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("himl: error: unknown compute backend 'nosuch'")


@pytest.mark.parametrize("mode", ["caught", "bug"])
def test_the_error_still_reaches_the_caller_and_other_errors_keep_their_traceback(tmp_path: Path, mode: str) -> None:
    done = _run(tmp_path, mode)
    if mode == "caught":
        assert done.returncode == 0 and done.stdout.strip() == "caught: UnknownNameError"
    else:
        assert done.returncode == 1 and "Traceback" in done.stderr and "ValueError: a bug" in done.stderr


def test_himl_verbose_shows_the_traceback(tmp_path: Path) -> None:
    done = _run(tmp_path, "uncaught", HIML_VERBOSE="1")
    assert done.returncode == 1 and "Traceback" in done.stderr and "UnknownNameError" in done.stderr
