"""The SQLite file behind a local run store: made whole or not at all.

MLflow creates its tables on the first open of an empty SQLite file, through
some forty alembic migrations (seconds of work). A process killed in the
middle leaves a file that MLflow can open no more. Here the file is made and
migrated aside, under a temporary name in the same folder, and renamed into
place when it is complete; a lock file keeps concurrent first uses from doing
the work twice. Before MLflow opens an existing file:

- a file at the installed MLflow's schema revision is used as it is;
- an older revision is upgraded on a copy, after a backup of the original is
  written beside it (``mlflow.db.backup-REVISION-TIME``); the upgraded copy then
  replaces the original;
- a revision the installed MLflow does not know (the store was written by a
  newer MLflow) is refused in one line naming the MLflow version that wrote it
  (recorded beside the store when himl made or upgraded it) or its revision;
- a half-made file left by an earlier tool (no schema revision, no runs) is
  moved aside and the store made again.

The store's files are created readable and writable by their owner only.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from himl_kernel.atomic import PARTIAL_SUFFIX, atomic_write_text, move_into_place
from himl_kernel.errors import HimlError

LOCK_SUFFIX = ".lock"
VERSION_SUFFIX = ".version.json"  # which MLflow made or upgraded the file, and to which schema revision
_CREATING = ".creating-"
_UPGRADING = ".upgrading-"
_OWNER_ONLY_FILE = 0o600
_OWNER_ONLY_FOLDER = 0o700


@dataclass(frozen=True)
class StoreFileState:
    """What an SQLite store file holds, read with the standard library only."""

    exists: bool
    revision: str | None  # alembic's schema revision, None when the file has none
    tables: int
    runs: int


def sqlite_path_of(uri: str) -> Path | None:
    """The file of a local ``sqlite:///`` tracking URI, else None (in-memory and remote stores)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def read_state(db: Path) -> StoreFileState:
    """The schema revision and size of ``db``, without MLflow; a file that is no SQLite database is an error."""
    if not db.exists() or db.stat().st_size == 0:
        return StoreFileState(db.exists(), None, 0, 0)
    try:
        with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=30)) as con:
            tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            revision = None
            if "alembic_version" in tables:
                row = con.execute("SELECT version_num FROM alembic_version").fetchone()
                revision = str(row[0]) if row else None
            runs = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] if "runs" in tables else 0
    except sqlite3.DatabaseError as exc:
        raise HimlError(
            f"the run store {db} is not an MLflow SQLite store ({exc}); move it away or set HIML_HOME"
        ) from exc
    return StoreFileState(True, revision, len(tables), int(runs))


def prepare(db: Path, artifact_root: Path) -> None:
    """Make ``db`` a complete store at the installed MLflow's schema revision, or raise a one-line error."""
    folder = db.parent
    make_private_folder(folder, "the run store's folder")
    head = head_revision()
    if read_state(db).revision == head:  # the usual case: nothing to do, no lock to wait for
        return
    with _locked(db):
        _remove_leftovers(db)
        state = read_state(db)  # again: another process may have made it while we waited
        if state.revision == head:
            return
        if state.revision is None:
            if state.runs:
                raise HimlError(
                    f"the run store {db} holds {state.runs} run(s) but no schema revision; "
                    f"back it up and run `mlflow db upgrade sqlite:///{db}`, or set HIML_HOME to another folder"
                )
            if state.exists:
                aside = db.with_name(f"{db.name}.incomplete-{_stamp()}")
                os.replace(db, aside)
                print(f"himl: the run store {db} was half-made; moved it to {aside} and made it again", file=sys.stderr)
            _create_aside(db, artifact_root, head)
        elif is_known_revision(state.revision):
            _upgrade_aside(db, state.revision, head)
        else:
            raise HimlError(_newer_store_message(db, state.revision))


def make_private_folder(folder: Path, what: str) -> None:
    """Create ``folder`` (owner only) if it is missing; a file or an unwritable place is a one-line error."""
    if folder.is_dir():
        return
    if folder.exists():
        raise HimlError(f"{what} {folder} is a file, not a folder; set HIML_HOME to a folder")
    try:
        folder.mkdir(parents=True, mode=_OWNER_ONLY_FOLDER)
    except FileExistsError:
        if not folder.is_dir():
            raise HimlError(f"{what} {folder} is a file, not a folder; set HIML_HOME to a folder") from None
    except OSError as exc:
        raise HimlError(
            f"cannot create {what} {folder}: {exc.strerror or exc}; set HIML_HOME to a writable folder"
        ) from exc


# -- making, upgrading ---------------------------------------------------------------


def _create_aside(db: Path, artifact_root: Path, head: str) -> None:
    stores: Any = importlib.import_module("mlflow.store.tracking.sqlalchemy_store")
    temp = db.with_name(f"{db.name}{_CREATING}{os.getpid()}")
    try:
        os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, _OWNER_ONLY_FILE))
        store = stores.SqlAlchemyStore(f"sqlite:///{temp}", str(artifact_root))
        store.engine.dispose()
        _fsync(temp)
        move_into_place(temp, db)
    except OSError as exc:
        raise HimlError(
            f"cannot create the run store {db}: {exc.strerror or exc}; set HIML_HOME to a writable folder"
        ) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    _record_version(db, head)


def _upgrade_aside(db: Path, revision: str, head: str) -> None:
    import mlflow

    utils = _mlflow_db()
    backup = db.with_name(f"{db.name}.backup-{revision}-{_stamp()}")
    temp = db.with_name(f"{db.name}{_UPGRADING}{os.getpid()}")
    try:
        _copy_database(db, temp)  # the copy that becomes the backup, written whole before it is named so
        os.replace(temp, backup)
        _copy_database(db, temp)  # the copy that is upgraded
        engine = utils.create_sqlalchemy_engine(f"sqlite:///{temp}")
        try:
            utils._upgrade_db(engine)
        finally:
            engine.dispose()
        _fsync(temp)
        move_into_place(temp, db)
    except OSError as exc:
        raise HimlError(f"cannot upgrade the run store {db}: {exc.strerror or exc}; it is unchanged") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    _record_version(db, head)
    print(
        f"himl: upgraded the run store {db} from schema {revision} to {head} (MLflow {mlflow.__version__}); "
        f"the store as it was is kept in {backup}",
        file=sys.stderr,
    )


def _copy_database(source: Path, target: Path) -> None:
    """A consistent copy of an SQLite database (SQLite's online backup), owner-only."""
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
    os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, _OWNER_ONLY_FILE))
    with (
        contextlib.closing(sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True, timeout=30)) as src,
        contextlib.closing(sqlite3.connect(target, timeout=30)) as dst,
    ):
        src.backup(dst)
    _fsync(target)


def head_revision() -> str:
    """The schema revision the installed MLflow writes."""
    return str(_mlflow_db()._get_latest_schema_revision())


def is_known_revision(revision: str) -> bool:
    """Whether the installed MLflow's migrations include ``revision`` (then it is older than theirs)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_mlflow_db()._get_alembic_config(db_url=""))
    try:
        return script.get_revision(revision) is not None
    except Exception:  # alembic raises its own ResolutionError / CommandError for an unknown id
        return False


def _newer_store_message(db: Path, revision: str) -> str:
    import mlflow

    recorded = _recorded_version(db)
    writer = (
        f"MLflow {recorded['mlflow']}"
        if recorded.get("schema") == revision and recorded.get("mlflow")
        else "a newer MLflow than this one"
    )
    install = f"pip install 'mlflow=={recorded['mlflow']}'" if writer.startswith("MLflow ") else "install that MLflow"
    return (
        f"the run store {db} was written by {writer} (schema revision {revision}, which the installed "
        f"MLflow {mlflow.__version__} does not know); {install} to use it, or set HIML_HOME to another folder "
        "for a new store"
    )


def _mlflow_db() -> Any:
    """MLflow's database helpers (schema revisions, engines, migrations); untyped, and private to MLflow."""
    return importlib.import_module("mlflow.store.db.utils")


# -- bookkeeping -----------------------------------------------------------------------


def version_file(db: Path) -> Path:
    return db.with_name(db.name + VERSION_SUFFIX)


def _record_version(db: Path, head: str) -> None:
    import mlflow

    note = json.dumps({"mlflow": mlflow.__version__, "schema": head})
    with contextlib.suppress(OSError):  # the note is a courtesy for later error messages; the store is fine without
        atomic_write_text(version_file(db), note, mode=_OWNER_ONLY_FILE)


def _recorded_version(db: Path) -> dict[str, str]:
    try:
        data = json.loads(version_file(db).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _remove_leftovers(db: Path) -> None:
    """Temporary files of first uses and upgrades that were killed: never the store itself."""
    note = version_file(db).name
    for pattern in (f"{db.name}{_CREATING}*", f"{db.name}{_UPGRADING}*", f".{note}.*{PARTIAL_SUFFIX}"):
        for leftover in db.parent.glob(pattern):
            with contextlib.suppress(OSError):
                leftover.unlink()


@contextlib.contextmanager
def _locked(db: Path) -> Iterator[None]:
    """An exclusive lock beside ``db``, held by this process until the block ends (or the process dies)."""
    import fcntl

    lock = db.with_name(db.name + LOCK_SUFFIX)
    try:
        fd = os.open(lock, os.O_CREAT | os.O_RDWR, _OWNER_ONLY_FILE)
    except OSError as exc:
        raise HimlError(
            f"cannot create the run store in {db.parent}: {exc.strerror or exc}; set HIML_HOME to a writable folder"
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
