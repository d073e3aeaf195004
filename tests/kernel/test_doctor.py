"""`himl doctor`: rows, fixes and exit codes for what is installed, broken or missing."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from himl_kernel import hookimpl
from himl_kernel.cli import doctor_cmd
from himl_kernel.cli.doctor_cmd import check_python, run_doctor
from himl_kernel.cli.main import main
from himl_kernel.doctor import DoctorReport
from himl_kernel.plugins import build_host


@pytest.fixture(autouse=True)
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "himl_home"
    monkeypatch.setenv("HIML_HOME", str(home))
    for name in ("MLFLOW_TRACKING_URI", "HIML_DISABLE_PLUGINS", "HIML_PLUGIN_AUTOLOAD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return home


def _rows(host: Any) -> tuple[int, dict[str, dict[str, str]]]:
    """run_doctor's exit code and its JSON rows by topic."""
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = run_doctor(argparse.Namespace(json=True, verbose=False), host)
    document = json.loads(buffer.getvalue())
    assert document["exit_code"] == code
    return code, {row["topic"]: row for row in document["checks"]}


# -- the report ---------------------------------------------------------------------


def test_only_problems_make_the_exit_code_non_zero() -> None:
    report = DoctorReport()
    report.ok("python", "3.11")
    report.missing("torch", "not installed", "pip install 'himl[lightning]'")
    assert report.exit_code == 0
    report.problem("plugin x", "raised on import", "pip install --force-reinstall himl-x")
    assert report.exit_code == 1


def test_render_puts_each_fix_under_its_row_and_counts_statuses() -> None:
    report = DoctorReport()
    report.ok("python", "3.11")
    report.missing("torch", "not installed", "pip install 'himl[lightning]'")
    report.problem("plugin x", "line one\nline two", "HIML_DISABLE_PLUGINS=x")
    lines = report.render().splitlines()
    assert lines[0].split() == ["ok", "python", "3.11"]
    assert lines[1].split()[:2] == ["missing", "torch"]
    assert lines[2].strip() == "fix: pip install 'himl[lightning]'"
    assert lines[3].split() == ["problem", "plugin", "x", "line", "one", "line", "two"]
    assert lines[4].strip() == "fix: HIML_DISABLE_PLUGINS=x"
    assert lines[-1] == "1 ok, 1 missing (optional), 1 problem(s)"


# -- whole command ------------------------------------------------------------------


def test_a_healthy_install_exits_0_even_with_optional_pieces_missing(
    private_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["doctor"])
    out = capsys.readouterr().out
    assert code == 0
    topics = {line.split()[1] for line in out.splitlines() if line.split()[:1] in (["ok"], ["missing"])}
    assert {"python", "himl", "mlflow", "pydantic", "torch", "lightning", "run", "HIML_HOME"} <= topics
    assert "azureml: azure-ai-ml" in out and "cpath: openslide-python" in out  # each plugin's own rows
    assert f"sqlite:///{private_home / 'mlflow.db'}" in out
    assert "(created on first use)" in out
    assert not private_home.exists()  # describing the store does not create it
    assert "0 problem(s)" in out


@dataclass(frozen=True)
class _Dist:
    name: str
    version: str


@dataclass
class _RaisingEntryPoint:
    """An installed plugin whose module fails on import."""

    name: str = "broken"
    value: str = "himl_broken.plugin"
    dist: _Dist = _Dist("himl-broken", "1.2.0")

    def load(self) -> Any:
        raise ImportError("No module named 'broken_sdk'")


def test_a_plugin_that_fails_on_import_is_a_problem_with_both_fixes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("himl_kernel.plugins.discover_entry_points", lambda: [_RaisingEntryPoint()])
    monkeypatch.setenv("HIML_DISABLE_PLUGINS", "hello")
    code = main(["doctor", "--json"])
    assert code == 1
    rows = {row["topic"]: row for row in json.loads(capsys.readouterr().out)["checks"]}
    broken = rows["plugin broken"]
    assert broken["status"] == "problem"
    assert "himl-broken 1.2.0" in broken["detail"] and "broken_sdk" in broken["detail"]
    assert broken["fix"] == "pip install --force-reinstall himl-broken, or skip it: HIML_DISABLE_PLUGINS=broken,hello"
    assert rows["plugin hello"]["status"] == "missing"  # disabled on purpose: not a problem
    assert rows["plugin local"]["status"] == "ok"


class _UnknownHook:
    @hookimpl
    def himl_no_such_hook(self) -> None:
        raise AssertionError("never called")


def test_a_plugin_with_an_unknown_hook_is_reported_and_can_only_be_skipped() -> None:
    host = build_host(autoload=False, extra_plugins={"odd": _UnknownHook()}, environ={})
    code, rows = _rows(host)
    assert code == 1
    assert rows["plugin odd"]["status"] == "problem"
    assert "himl_no_such_hook" in rows["plugin odd"]["detail"]
    assert rows["plugin odd"]["fix"] == "skip it: HIML_DISABLE_PLUGINS=odd"


class _FailsWhileRegistering:
    @hookimpl
    def himl_register_containers(self, registry: Any) -> None:
        raise RuntimeError("bad descriptor")


def test_a_plugin_that_fails_in_a_registration_hook_is_found_by_doctor() -> None:
    host = build_host(autoload=False, extra_plugins={"late": _FailsWhileRegistering()}, environ={})
    code, rows = _rows(host)
    assert code == 1
    assert "himl_register_containers raised RuntimeError: bad descriptor" in rows["plugin late"]["detail"]


class _Checks:
    def __init__(self, status: str) -> None:
        self.status = status

    @hookimpl
    def himl_doctor(self, report: DoctorReport) -> None:
        report.ok("example sdk", "1.0")
        if self.status == "missing":
            report.missing("example config", "no ~/.example", "example login")
        else:
            report.problem("example config", "expired token", "example login")


@pytest.mark.parametrize(("status", "expected_code"), [("missing", 0), ("problem", 1)])
def test_plugins_add_their_own_rows(status: str, expected_code: int) -> None:
    host = build_host(autoload=False, extra_plugins={"example": _Checks(status)}, environ={})
    code, rows = _rows(host)
    assert code == expected_code
    assert rows["example sdk"]["status"] == "ok"
    assert rows["example config"] == {
        "topic": "example config",
        "status": status,
        "detail": "no ~/.example" if status == "missing" else "expired token",
        "fix": "example login",
    }


class _RaisingCheck:
    @hookimpl
    def himl_doctor(self, report: DoctorReport) -> None:
        raise KeyError("region")


def test_a_plugin_check_that_raises_becomes_a_problem_row() -> None:
    host = build_host(autoload=False, extra_plugins={"raising": _RaisingCheck()}, environ={})
    code, rows = _rows(host)
    assert code == 1
    assert "KeyError" in rows["plugin raising checks"]["detail"]
    assert "HIML_DISABLE_PLUGINS=raising" in rows["plugin raising checks"]["fix"]
    assert rows["python"]["status"] == "ok"  # the kernel's own rows are still there


# -- single checks ------------------------------------------------------------------


def test_python_older_than_3_10_is_a_problem() -> None:
    report = DoctorReport()
    check_python(report, (3, 9, 18))
    assert report.rows[0].status == "problem" and "3.9.18" in report.rows[0].detail
    check_python(report, (3, 10, 0))
    assert report.rows[1].status == "ok"


@pytest.fixture
def fake_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An installed distribution ``himl-fake-plugin`` whose metadata declares the requirements below."""
    info = tmp_path / "site" / "himl_fake_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: himl-fake-plugin\nVersion: 1.0\n"
        "Provides-Extra: fast\nProvides-Extra: test\n"
        "Requires-Dist: pluggy>=1.5\n"
        "Requires-Dist: PyYAML<1\n"
        "Requires-Dist: himl-no-such-package>=2\n"
        "Requires-Dist: himl-no-such-optional; extra == 'fast'\n"
        'Requires-Dist: himl-no-such-test-tool; extra == "test"\n'
        "Requires-Dist: himl-never-here; python_version < '3'\n"
        "Requires-Dist: Pluggy [extra] >= 1.0 ; python_version >= '3'\n"
    )
    monkeypatch.syspath_prepend(str(info.parent))
    return "himl-fake-plugin"


def test_requirements_are_read_from_metadata_and_each_becomes_a_row(fake_distribution: str) -> None:
    report = DoctorReport()
    assert report.requirements_of(fake_distribution, label="fake")
    rows = {row.topic: row for row in report.rows}
    assert list(rows) == ["fake: pluggy", "fake: PyYAML", "fake: himl-no-such-package", "fake: himl-no-such-optional"]
    assert rows["fake: pluggy"].status == "ok" and "himl-fake-plugin needs >=1.5" in rows["fake: pluggy"].detail
    assert rows["fake: PyYAML"].status == "problem" and "himl-fake-plugin needs <1" in rows["fake: PyYAML"].detail
    assert rows["fake: PyYAML"].fix == "pip install 'PyYAML<1'"
    missing = rows["fake: himl-no-such-package"]
    assert (missing.status, missing.fix) == ("problem", "pip install 'himl-no-such-package>=2'")
    optional = rows["fake: himl-no-such-optional"]
    assert (optional.status, optional.fix) == ("missing", "pip install 'himl-fake-plugin[fast]'")
    assert report.exit_code == 1


def test_requirements_of_a_distribution_that_is_not_installed_add_nothing() -> None:
    report = DoctorReport()
    assert report.requirements_of("himl-no-such-distribution") is False
    assert report.rows == []


def test_the_kernel_doctor_names_no_plugins_packages() -> None:
    from importlib import metadata

    from packaging.requirements import Requirement

    import himl_kernel.doctor

    source = Path(doctor_cmd.__file__).read_text() + Path(himl_kernel.doctor.__file__).read_text()
    for plugin in ("himl-cpath", "himl-azure-v2"):
        names = {Requirement(line).name for line in metadata.requires(plugin) or []} - {"himl", "mlflow"}
        assert names, plugin
        assert not {name for name in names if name in source}, plugin


def test_without_plugins_no_plugin_package_is_reported() -> None:
    host = build_host(autoload=False, environ={})
    _, rows = _rows(host)
    # the kernel's extras may name a plugin's distribution (himl[cpath] is himl-cpath); never the plugin's packages
    assert not {"azure-ai-ml", "openslide-python", "timm", "cpath: timm", "azureml: azure-ai-ml"} & set(rows)
    assert rows["himl-cpath"]["detail"].endswith("(himl needs <0.2,>=0.1)")
    assert rows["mlflow"]["status"] == "ok" and "himl needs" in rows["mlflow"]["detail"]


def test_doctor_imports_none_of_the_packages_it_checks() -> None:
    code = (
        "import sys\n"
        "from himl_kernel.cli.main import main\n"
        "main(['doctor'])\n"
        "heavy = ('torch', 'mlflow', 'lightning', 'tensorboard', 'azure', 'azureml', 'openslide', 'sqlalchemy')\n"
        "print('IMPORTED', sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "IMPORTED []" in result.stdout  # the store is not made yet: nothing to open


def test_an_unwritable_himl_home_is_a_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    monkeypatch.setenv("HIML_HOME", str(not_a_folder))
    code = main(["doctor", "--json"])
    rows = {row["topic"]: row for row in json.loads(capsys.readouterr().out)["checks"]}
    assert code == 1
    assert rows["HIML_HOME"]["status"] == "problem" and "is a file" in rows["HIML_HOME"]["detail"]
    assert rows["HIML_HOME"]["fix"] == "set HIML_HOME to a writable folder"


def test_a_tracking_uri_from_the_environment_is_shown_without_its_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://alice:s3cret@mlflow.invalid:5000/api")
    code = main(["doctor"])
    out = capsys.readouterr().out
    assert code == 1  # the store is opened for real, and this server cannot be reached
    assert "https://alice:***@mlflow.invalid:5000/api" in out and "s3cret" not in out
    assert any(line.split()[:2] == ["ok", "MLFLOW_TRACKING_URI"] for line in out.splitlines())
    assert any(line.split()[:4] == ["problem", "run", "store", "schema"] for line in out.splitlines())


# -- the run store, opened -------------------------------------------------------------


def _store_row(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, str]]:
    code = main(["doctor", "--json"])
    rows = {row["topic"]: row for row in json.loads(capsys.readouterr().out)["checks"]}
    return code, rows["run store schema"]


def test_doctor_opens_the_store_and_reports_its_schema_and_size(
    private_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from himl_kernel.runstore import RunStore
    from himl_kernel.storefile import head_revision

    RunStore().create_run("doctor", "one")
    code, row = _store_row(capsys)
    assert code == 0 and row["status"] == "ok"
    assert row["detail"].startswith(f"revision {head_revision()} (MLflow ")
    assert row["detail"].endswith("2 experiment(s), 1 run(s)")  # MLflow's Default and ours


def test_doctor_reports_a_store_written_by_a_newer_mlflow_as_a_problem(
    private_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    from himl_kernel.runstore import RunStore

    RunStore().create_run("doctor", "one")
    db = private_home / "mlflow.db"
    with sqlite3.connect(db) as con:
        con.execute("UPDATE alembic_version SET version_num = 'f00dfeedbeef'")
    code, row = _store_row(capsys)
    assert code == 1 and row["status"] == "problem"
    assert "schema revision f00dfeedbeef" in row["detail"] and "does not know" in row["detail"]


def test_doctor_describes_an_older_store_without_upgrading_it(
    private_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config

    from himl_kernel.runstore import RunStore

    RunStore().create_run("doctor", "one")
    db = private_home / "mlflow.db"
    command.downgrade(_get_alembic_config(f"sqlite:///{db}"), "-1")
    before = db.read_bytes()
    code, row = _store_row(capsys)
    assert code == 0 and row["status"] == "ok"
    assert "the next himl command upgrades it, keeping a copy beside it (1 runs)" in row["detail"]
    assert db.read_bytes() == before and not list(private_home.glob("mlflow.db.backup-*"))


def test_doctor_reports_a_tracking_server_that_does_not_answer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    started = time.monotonic()
    code, row = _store_row(capsys)
    assert time.monotonic() - started < 15
    assert code == 1 and row["status"] == "problem" and "cannot be reached" in row["detail"]
