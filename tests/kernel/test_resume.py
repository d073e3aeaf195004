"""An interrupted local run is carried on by rerunning the same command."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

from himl_kernel.runstore import RunStore

from ..conftest import HIML, JOB_VARIABLES

SCRIPT = """
import os, sys, time
from himl_kernel import submit_if_needed, log_metric
info = submit_if_needed()
marker = info.output_folder / "attempts.txt"
attempts = marker.read_text().splitlines() if marker.exists() else []
attempts.append(str(os.getpid()))
marker.write_text("\\n".join(attempts))
log_metric("attempt", len(attempts), step=len(attempts))
print("attempt", len(attempts), flush=True)
flag = os.path.join(os.getcwd(), "sleep_once")
if os.path.exists(flag):
    os.remove(flag)
    time.sleep(120)  # the test kills us here
"""


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in JOB_VARIABLES}
    env["HIML_HOME"] = str(home)
    return env


def test_rerun_after_sigkill_continues_the_same_run_in_the_same_folder(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    home = tmp_path / "home"
    command = [HIML, "submit", str(script), "--", "--x", "1"]
    (tmp_path / "sleep_once").write_text("")
    first = subprocess.Popen(command, cwd=tmp_path, env=_env(home), stdout=subprocess.PIPE, text=True)
    assert first.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in first.stdout or ()], daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    started = False
    while not started and time.monotonic() < deadline:
        try:
            started = lines.get(timeout=1).startswith("attempt 1")
        except queue.Empty:
            continue
    first.send_signal(signal.SIGKILL)
    assert started, "the job never printed 'attempt 1' within 120 s"
    first.wait(timeout=30)

    store = RunStore(home=home)
    (interrupted,) = store.list_runs("job")
    assert interrupted.status == "RUNNING"
    child_pid = int((store.folders(interrupted)[0] / "attempts.txt").read_text().splitlines()[0])
    for _ in range(50):  # the job died with its launcher
        try:
            os.kill(child_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"job process {child_pid} outlived the killed himl process")

    second = subprocess.run(command, cwd=tmp_path, env=_env(home), capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert f"resuming interrupted run {interrupted.run_id}" in second.stdout
    (resumed,) = store.list_runs("job")
    assert resumed.run_id == interrupted.run_id and resumed.status == "FINISHED"
    assert len((store.folders(resumed)[0] / "attempts.txt").read_text().splitlines()) == 2
    assert store.metric_history(resumed.run_id, "attempt") == [(1, 1.0), (2, 2.0)]

    third = subprocess.run(command, cwd=tmp_path, env=_env(home), capture_output=True, text=True, timeout=120)
    assert third.returncode == 0 and "resuming" not in third.stdout  # a finished run is not resumed
    assert len(store.list_runs("job")) == 2

    fresh = subprocess.run(
        [*command[:2], "--no-resume", *command[2:]], cwd=tmp_path, env=_env(home), capture_output=True, text=True
    )
    assert fresh.returncode == 0 and len(store.list_runs("job")) == 3
