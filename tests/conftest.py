"""Shared test setup: no test may see the developer's own runs or a job's identity."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HIML = str(Path(sys.executable).with_name("himl"))

JOB_VARIABLES = (
    "HIML_RUN_ID",
    "HIML_BACKEND",
    "HIML_PARENT_RUN_ID",
    "HIML_OUTPUT_FOLDER",
    "HIML_LOGS_FOLDER",
    "HIML_INPUT_DATASETS",
    "HIML_OUTPUT_DATASETS",
    "HIML_IS_REMOTE",
    "HIML_DISABLE_PLUGINS",
    "HIML_PLUGIN_AUTOLOAD",
    "HIML_LOGGERS",
    "MLFLOW_RUN_ID",
    "MLFLOW_TRACKING_URI",
    "HIML_WIRE_FORMAT",
    # a test is one process unless it starts more: no rank of an outer torchrun, MPI or Lightning launch
    "RANK",
    "LOCAL_RANK",
    "NODE_RANK",
    "GROUP_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "OMPI_COMM_WORLD_RANK",
    "OMPI_COMM_WORLD_LOCAL_RANK",
    "OMPI_COMM_WORLD_SIZE",
    "OMPI_COMM_WORLD_LOCAL_SIZE",
    # nor the rendezvous of one: a leaked MASTER_ADDR sends a later test's DDP processes to a host that is not there
    "MASTER_ADDR",
    "MASTER_PORT",
    "MASTER_IP",
    "AZ_BATCH_MASTER_NODE",
    "AZ_BATCHAI_MPI_MASTER_NODE",
)


@pytest.fixture(autouse=True)
def _not_inside_a_job() -> Iterator[None]:
    """No job variables during a test, and the whole environment as it was afterwards.

    Restoring all of it (not only what monkeypatch recorded) matters: code under test such as
    hi-ml's ``set_environment_variables_for_multi_node`` sets variables itself, and a
    ``monkeypatch.delenv`` of an absent variable records nothing to undo.
    """
    saved = dict(os.environ)
    for name in JOB_VARIABLES:
        os.environ.pop(name, None)
    yield
    for name in set(os.environ) - set(saved):
        del os.environ[name]
    for name, value in saved.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


@pytest.fixture(autouse=True)
def _no_active_run_outlives_its_test() -> Iterator[None]:
    """A test that activates a run (submit_if_needed inside a job does, for good) must not leak it."""
    from himl_kernel import current

    before = list(current._STACK)
    yield
    current._STACK[:] = before


@pytest.fixture
def himl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private run store and cache, with the current folder in tmp_path."""
    home = tmp_path / "himl_home"
    monkeypatch.setenv("HIML_HOME", str(home))
    monkeypatch.setenv("HIML_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    yield home


def run_himl(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The ``himl`` command in a subprocess, with the test's environment."""
    full_env = {k: v for k, v in os.environ.items() if k not in JOB_VARIABLES}
    full_env.update(env or {})
    return subprocess.run([HIML, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def run_script(script: Path, *args: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run ``script`` as ``python script.py ARGS`` in this process; its exit status."""
    monkeypatch.setattr(sys, "argv", [str(script), *args])
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # a local run wraps it; restore it afterwards
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def error_lines(stderr: str) -> list[str]:
    """The lines of stderr that are himl's own errors (not warnings or tool noise)."""
    return [line for line in stderr.splitlines() if line.startswith("himl: error:")]
