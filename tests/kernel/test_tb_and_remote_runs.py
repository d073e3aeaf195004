"""`himl tb` and runs that live outside the local store (found through himl_locate_run)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from himl_kernel import hookimpl
from himl_kernel.cli.main import main
from himl_kernel.plugins import build_host
from himl_kernel.runstore import RunStore

from ..conftest import HIML, JOB_VARIABLES


class _RemoteFiles:
    where = "a pretend cloud"

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def download(self, path: str, dest: Path) -> Path:
        target = dest / (path or "")
        target.mkdir(parents=True, exist_ok=True)
        (target / "from_the_cloud.txt").write_text(f"{self.run_id}/{path}")
        return target


class _Locator:
    @hookimpl
    def himl_locate_run(self, run_id: str) -> _RemoteFiles | None:
        return _RemoteFiles(run_id) if run_id.startswith("cloud_") else None


def test_runs_download_asks_plugins_for_runs_the_store_does_not_have(
    himl_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = build_host(autoload=False, extra_plugins={"locator": _Locator()})
    monkeypatch.setattr("himl_kernel.plugins.build_host", lambda **_: host)
    assert main(["runs", "download", "cloud_job_7", "--path", "outputs", "--dest", "got"]) == 0
    assert (Path("got") / "outputs" / "from_the_cloud.txt").read_text() == "cloud_job_7/outputs"
    assert main(["runs", "download", "nobody_knows"]) == 2


@pytest.fixture(scope="module")
def run_with_events(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    home = tmp_path_factory.mktemp("tb") / "home"
    env = {k: v for k, v in os.environ.items() if k not in JOB_VARIABLES}
    env.update({"HIML_HOME": str(home), "HIML_LOGGERS": "mlflow,tensorboard"})
    done = subprocess.run(
        [HIML, "run", "--model", "PlainHelloWorld", "--max_epochs", "2"],
        cwd=home.parent, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (run,) = RunStore(home=home).list_runs("PlainHelloWorld")
    return home, run.run_id


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in JOB_VARIABLES}
    env["HIML_HOME"] = str(home)
    return env


def test_tb_points_tensorboard_at_a_local_runs_logs(run_with_events: tuple[Path, str]) -> None:
    home, run_id = run_with_events
    done = subprocess.run(
        [HIML, "tb", run_id, "--print-only"], cwd=home.parent, env=_env(home), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    label, _, folder = done.stdout.strip().partition(":")
    assert label == run_id
    assert list(Path(folder).glob("events.out.tfevents.*"))


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started (Linux's /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _gone(pid: int) -> bool:
    """Whether ``pid`` has ended (no such process, or a zombie waiting to be reaped)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name)
def test_tb_serves_the_run_and_its_tensorboard_stops_with_it(
    run_with_events: tuple[Path, str], stop: signal.Signals
) -> None:
    home, run_id = run_with_events
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [HIML, "tb", run_id, "--port", str(port)], cwd=home.parent, env=_env(home),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    children: list[int] = []
    try:
        deadline, runs = time.monotonic() + 120, []
        while time.monotonic() < deadline and not runs:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=5) as response:
                    runs = json.loads(response.read())
            except OSError:
                time.sleep(0.5)
        assert any(name.startswith(run_id) for name in runs), runs
        children = _children(server.pid)
        assert len(children) == 1, children  # TensorBoard, serving
        server.send_signal(stop)  # himl only, not its process group: himl must stop what it started
        code = server.wait(timeout=60)
        assert code == {signal.SIGTERM: 128 + signal.SIGTERM, signal.SIGINT: 0, signal.SIGKILL: -signal.SIGKILL}[stop]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _gone(children[0]):
            time.sleep(0.2)
        assert _gone(children[0]), f"TensorBoard (pid {children[0]}) outlived himl tb"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


def test_tb_on_a_run_without_event_files_is_one_line(run_with_events: tuple[Path, str], tmp_path: Path) -> None:
    home, _ = run_with_events
    store = RunStore(home=home)
    bare = store.create_run("bare", "no tensorboard")
    store.folders(bare)
    done = subprocess.run(
        [HIML, "tb", bare.run_id, "--print-only"], cwd=tmp_path, env=_env(home), capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"himl: error: run {bare.run_id} has no TensorBoard event files in its logs "
        f"(looked in {store.folders(bare)[1]})"
    ]
