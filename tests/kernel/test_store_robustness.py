"""The local run store survives kills during its first use, concurrent first uses, versions and bad settings."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from himl_kernel.errors import HimlError
from himl_kernel.runstore import RunStore
from himl_kernel.storefile import read_state

from ..conftest import HIML, JOB_VARIABLES, error_lines

# A first use of the store: make a run in it, and say its id.
FIRST_USE = (
    "from himl_kernel.runstore import RunStore\n"
    "store = RunStore()\n"
    "run = store.create_run('first-use', 'one run')\n"
    "store.folders(run)\n"
    "print(run.run_id)\n"
)


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in JOB_VARIABLES and not k.startswith("MLFLOW_")}
    env.update({"HIML_HOME": str(home), "HIML_PLUGIN_AUTOLOAD": "0", **extra})
    return env


def _himl(
    *args: str, home: Path, cwd: Path, timeout: float = 300, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    env = kwargs.pop("env", None) or _env(home)
    return subprocess.run([HIML, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload, no-any-return]


def _one_error(done: subprocess.CompletedProcess[str]) -> str:
    """The single ``himl: error:`` line of a failed command, with no traceback beside it."""
    assert done.returncode != 0, done.stdout
    lines = error_lines(done.stderr)
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return lines[0]


# -- kills and concurrency -----------------------------------------------------------


def _time_to_make_a_store(home: Path, cwd: Path) -> float:
    child = subprocess.Popen(
        [sys.executable, "-c", FIRST_USE], cwd=cwd, env=_env(home), stdout=subprocess.PIPE, text=True
    )
    own = home / f"mlflow.db.creating-{child.pid}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None and not own.exists():
        time.sleep(0.01)
    began = time.monotonic()
    while time.monotonic() < deadline and child.poll() is None and not (home / "mlflow.db").exists():
        time.sleep(0.005)
    made = time.monotonic() - began  # the temporary file is renamed into place as the last step of making it
    child.communicate(timeout=300)
    assert child.returncode == 0 and (home / "mlflow.db").exists()
    return made


@pytest.mark.slow
def test_sigkill_at_any_moment_of_the_first_use_leaves_a_usable_store(tmp_path: Path) -> None:
    home = tmp_path / "home"
    db = home / "mlflow.db"
    # How long making a store takes here, from its temporary file's appearance to its rename into place,
    # so that the kills fall early, in the middle and late in it whatever the machine's speed.
    span = _time_to_make_a_store(tmp_path / "calibration", tmp_path)
    delays = [span * f for f in (0.0, 0.03, 0.1, 0.2, 0.3, 0.45, 0.6, 0.7, 0.8, 0.05)]
    killed_while_making = 0
    for delay in delays:
        child = subprocess.Popen(
            [sys.executable, "-c", FIRST_USE], cwd=tmp_path, env=_env(home),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        own = home / f"mlflow.db.creating-{child.pid}"  # this child's, not one an earlier killed child left
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None and not own.exists():
            time.sleep(0.01)
        time.sleep(delay)
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            killed_while_making += 1
        child.communicate(timeout=60)
        # the store is never seen half-made under its own name: it is there whole, or not at all
        state = read_state(db)
        assert not state.exists or state.revision is not None
    assert killed_while_making >= 8, "the kills should land while the store is being made"
    assert list(home.glob("mlflow.db.creating-*")), "killed first uses leave only their temporary files"

    done = subprocess.run(
        [sys.executable, "-c", FIRST_USE], cwd=tmp_path, env=_env(home), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    assert [run.run_id for run in RunStore(home=home).list_runs("first-use")] == [run_id]
    assert not list(home.glob("mlflow.db.creating-*"))  # the next first use cleared what the killed ones left


@pytest.mark.slow
def test_three_concurrent_first_uses_all_succeed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_USE],
            cwd=tmp_path,
            env=_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [child.communicate(timeout=300) for child in children]
    assert [child.returncode for child in children] == [0, 0, 0], [err for _, err in results]
    made = {out.strip() for out, _ in results}
    assert len(made) == 3
    assert {run.run_id for run in RunStore(home=home).list_runs("first-use")} == made


def test_the_store_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = RunStore(home=home)
    outputs, logs = store.folders(store.create_run("private", "one run"))
    assert stat.S_IMODE((home / "mlflow.db").stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "artifacts").stat().st_mode) == 0o700
    assert stat.S_IMODE(outputs.stat().st_mode) == 0o700 and stat.S_IMODE(logs.stat().st_mode) == 0o700


# -- versions -------------------------------------------------------------------------


@pytest.fixture
def made_store(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A store with one run in it, made by the installed MLflow."""
    home = tmp_path / "home"
    store = RunStore(home=home)
    run = store.create_run("kept", "a run to keep")
    yield home, run.run_id


def _set_revision(db: Path, revision: str) -> None:
    with sqlite3.connect(db) as con:
        con.execute("UPDATE alembic_version SET version_num = ?", (revision,))


def test_a_store_written_by_a_newer_mlflow_is_refused_in_one_line_naming_its_revision(
    made_store: tuple[Path, str], tmp_path: Path
) -> None:
    home, _ = made_store
    db = home / "mlflow.db"
    (home / "mlflow.db.version.json").unlink()
    _set_revision(db, "f00dfeedbeef")
    before = db.read_bytes()
    line = _one_error(_himl("runs", "list", home=home, cwd=tmp_path))
    assert "was written by a newer MLflow than this one (schema revision f00dfeedbeef" in line
    assert "set HIML_HOME to another folder" in line
    assert db.read_bytes() == before  # refused, not touched
    assert not list(home.glob("mlflow.db.backup-*"))


def test_a_store_a_newer_himl_upgraded_names_the_mlflow_version_that_wrote_it(made_store: tuple[Path, str]) -> None:
    home, _ = made_store
    _set_revision(home / "mlflow.db", "f00dfeedbeef")
    (home / "mlflow.db.version.json").write_text(json.dumps({"mlflow": "9.1.0", "schema": "f00dfeedbeef"}))
    with pytest.raises(HimlError, match=r"written by MLflow 9\.1\.0 \(schema revision f00dfeedbeef.*"
                       r"pip install 'mlflow==9\.1\.0'"):  # fmt: skip
        RunStore(home=home).list_runs()


def test_an_older_store_is_upgraded_only_after_a_backup_beside_it(made_store: tuple[Path, str]) -> None:
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config, _get_latest_schema_revision

    home, run_id = made_store
    db = home / "mlflow.db"
    head = _get_latest_schema_revision()
    command.downgrade(_get_alembic_config(f"sqlite:///{db}"), "-1")  # what an older MLflow left
    older = read_state(db).revision
    assert older is not None and older != head

    store = RunStore(home=home)
    assert [run.run_id for run in store.list_runs("kept")] == [run_id]
    assert read_state(db).revision == head
    (backup,) = home.glob(f"mlflow.db.backup-{older}-*")
    assert read_state(backup).revision == older and read_state(backup).runs == 1
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600


def test_a_half_made_store_without_runs_is_moved_aside_and_made_again(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with sqlite3.connect(home / "mlflow.db") as con:  # tables but no schema revision: a first use cut short
        con.execute("CREATE TABLE experiments (experiment_id INTEGER PRIMARY KEY, name TEXT)")
    run = RunStore(home=home).create_run("again", "after the rebuild")
    assert RunStore(home=home).get(run.run_id).experiment == "again"
    (aside,) = home.glob("mlflow.db.incomplete-*")
    assert read_state(aside).tables == 1


def test_a_file_that_is_no_database_is_one_line_and_stays(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "mlflow.db").write_text("not a database, but someone's notes\n" * 100)
    line = _one_error(_himl("runs", "list", home=home, cwd=tmp_path))
    assert f"the run store {home / 'mlflow.db'} is not an MLflow SQLite store" in line
    assert (home / "mlflow.db").read_text().startswith("not a database")


# -- bad settings ------------------------------------------------------------------------


def test_himl_home_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / "a_file"
    home.write_text("keep me")
    done = _himl("run", "--model", "PlainHelloWorld", "--max_epochs", "1", home=home, cwd=tmp_path)
    assert _one_error(done) == (f"himl: error: HIML_HOME {home} is a file, not a folder; set HIML_HOME to a folder")
    assert home.read_text() == "keep me"


def _without_permission_override() -> None:
    """In the child: permission bits apply even to root (the capabilities that let root ignore them are dropped)."""
    if os.geteuid() != 0:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop, cap_dac_override, cap_dac_read_search = 24, 1, 2
    for capability in (cap_dac_override, cap_dac_read_search):  # the executed program starts without them
        if libc.prctl(pr_capbset_drop, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _unprivileged() -> dict[str, object]:
    return {"preexec_fn": _without_permission_override}


@pytest.fixture
def shared_tmp(tmp_path: Path) -> Iterator[Path]:
    """A folder whose permissions the test changes, restored afterwards so that it can be removed."""
    yield tmp_path
    for path in [tmp_path, *tmp_path.rglob("*")]:
        path.chmod(0o700)


def test_a_read_only_himl_home_is_one_line(shared_tmp: Path) -> None:
    home = shared_tmp / "home"
    home.mkdir(mode=0o555)
    home.chmod(0o555)
    done = _himl("run", "--model", "PlainHelloWorld", "--max_epochs", "1", home=home, cwd=shared_tmp, **_unprivileged())
    line = _one_error(done)
    assert str(home) in line and "set HIML_HOME to a writable folder" in line
    assert list(home.iterdir()) == []


def test_a_read_only_store_can_be_listed_but_not_written(shared_tmp: Path) -> None:
    home = shared_tmp / "home"
    store = RunStore(home=home)
    kept = store.create_run("kept", "a run to keep")
    db = home / "mlflow.db"
    for path in (db, *home.glob("mlflow.db.*")):
        path.chmod(0o444)
    home.chmod(0o555)
    before = db.read_bytes()
    listed = _himl("runs", "list", home=home, cwd=shared_tmp, **_unprivileged())
    assert listed.returncode == 0, listed.stderr
    assert kept.run_id in listed.stdout
    done = _himl("run", "--model", "PlainHelloWorld", "--max_epochs", "1", home=home, cwd=shared_tmp, **_unprivileged())
    line = _one_error(done)
    assert f"in the run store {home}" in line and "what the store already holds is unchanged" in line
    assert db.read_bytes() == before


def _file_size_limit(limit: int) -> None:
    """In the child: no file may grow beyond ``limit`` bytes, as on a disk that is full."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_full_disk_is_one_line_and_loses_nothing(made_store: tuple[Path, str], tmp_path: Path) -> None:
    home, run_id = made_store
    before = RunStore(home=home).get(run_id)
    before_bytes = (home / "mlflow.db").read_bytes()
    # As on a full disk, no file can take new blocks: writes beyond the first 4 KiB of any file fail (Python
    # ignores SIGXFSZ, so the write fails with EFBIG, which SQLite reports as a full disk or an I/O error).
    done = subprocess.run(
        [HIML, "run", "--model", "PlainHelloWorld", "--max_epochs", "1"],
        cwd=tmp_path, env=_env(home), capture_output=True, text=True, timeout=300,
        preexec_fn=lambda: _file_size_limit(4096),
    )  # fmt: skip
    line = _one_error(done)
    assert f"in the run store {home}" in line and "disk" in line and "free space there" in line
    assert (home / "mlflow.db").read_bytes() == before_bytes  # the transaction never happened
    store = RunStore(home=home)
    assert store.get(run_id) == before  # what was there is intact
    assert [run.run_id for run in store.list_runs()] == [run_id]


class _SilentServer:
    """A TCP server that accepts connections and never answers."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.port = self.socket.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.socket.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.socket.close()
        for conn in self.accepted:
            conn.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("server", ["closed port", "never answers"])
def test_a_tracking_uri_that_does_not_answer_fails_within_15_seconds(server: str, tmp_path: Path) -> None:
    silent = _SilentServer() if server == "never answers" else None
    port = silent.port if silent else _closed_port()
    uri = f"http://alice:pa55word@127.0.0.1:{port}/mlflow"
    try:
        started = time.monotonic()
        done = _himl(
            "run", "--model", "PlainHelloWorld", "--max_epochs", "1",
            home=tmp_path / "home", cwd=tmp_path, env=_env(tmp_path / "home", MLFLOW_TRACKING_URI=uri),
        )  # fmt: skip
        elapsed = time.monotonic() - started
    finally:
        if silent:
            silent.close()
    line = _one_error(done)
    assert f"the run store http://alice:***@127.0.0.1:{port}/mlflow" in line
    assert ("did not answer within 5 s" if silent else "cannot be reached") in line
    assert "pa55word" not in done.stderr + done.stdout
    assert elapsed < 15, f"took {elapsed:.1f} s"
    if silent:
        assert silent.accepted, "the server was asked"
