"""Shared setup of the Lightning tests: a private run store per module, and HelloWorld runs in it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from himl_kernel.cli.main import main
from himl_kernel.errors import HimlError
from himl_kernel.runstore import RunStore, StoredRun

from ..conftest import HIML, JOB_VARIABLES


@dataclass
class Store:
    """A private run store (HIML_HOME) and the folder the test runs commands in."""

    home: Path
    cwd: Path

    @property
    def runs(self) -> RunStore:
        return RunStore(home=self.home)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in JOB_VARIABLES}
        env["HIML_HOME"] = str(self.home)
        env["HIML_CACHE"] = str(self.home.parent / "cache")
        return env

    def himl(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        """``himl ARGS`` in a subprocess against this store."""
        return subprocess.run(
            [HIML, *args], cwd=self.cwd, env=self.env(), capture_output=True, text=True, timeout=timeout
        )

    def newest(self, experiment: str = "HelloWorld") -> StoredRun:
        return self.runs.list_runs(experiment, max_results=1)[0]

    def outputs(self, run: StoredRun) -> Path:
        return self.runs.folders(run)[0]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One run store for the whole module; the process's environment points at it while the module runs."""
    root = tmp_path_factory.mktemp("lightning")
    shared = Store(root / "home", root)
    with pytest.MonkeyPatch.context() as patch:
        for name in JOB_VARIABLES:
            patch.delenv(name, raising=False)
        patch.setenv("HIML_HOME", str(shared.home))
        patch.setenv("HIML_CACHE", str(root / "cache"))
        patch.chdir(root)
        yield shared


def all_runs(store: Store, experiment: str = "HelloWorld") -> list[StoredRun]:
    try:
        return store.runs.list_runs(experiment, max_results=1000)
    except HimlError:  # no such experiment yet
        return []


def run_here(store: Store, *args: str) -> StoredRun:
    """``himl run --model HelloWorld ARGS`` in this process; the run it created."""
    before = {r.run_id for r in all_runs(store)}
    assert main(["run", "--model", "HelloWorld", *args]) == 0
    new = [r for r in all_runs(store) if r.run_id not in before]
    assert len(new) >= 1
    return min(new, key=lambda r: r.start_time or 0)  # a sweep's parent starts first
