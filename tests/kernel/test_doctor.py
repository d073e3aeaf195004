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
from himl_kernel.cli.doctor_cmd import OptionalPackage, check_packages, check_python, run_doctor
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
    assert {"python", "himl", "mlflow", "torch", "lightning", "azure-ai-ml", "run", "HIML_HOME"} <= topics
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


def test_missing_packages_point_to_a_himl_extra_or_to_pip() -> None:
    report = DoctorReport()
    check_packages(
        report,
        optional=(
            OptionalPackage("no-such-trainer", "himl_no_such_module.trainer", "testing", ("lightning",)),
            OptionalPackage("torch-twin", "himl_no_such_torch", "testing", ("no-such-extra",)),
            OptionalPackage("no-such-sdk", "himl_no_such_sdk", "testing", ("no-such-extra",)),
            OptionalPackage("json-alias", "json.decoder", "testing"),
        ),
        required=(OptionalPackage("no-such-core", "himl_no_such_core", "the kernel"),),
    )
    rows = {row.topic: row for row in report.rows}
    assert rows["no-such-core"].status == "problem"
    assert rows["no-such-trainer"].status == "missing"
    assert rows["no-such-trainer"].fix == "pip install 'himl[lightning]'"
    assert rows["no-such-sdk"].fix == "pip install no-such-sdk"
    assert rows["json-alias"].status == "ok"
    assert report.exit_code == 1


def test_an_extra_that_requires_the_distribution_is_suggested() -> None:
    declared = {"lightning", "all", "test"}
    by_distribution = {"torch": ["all", "lightning", "test"]}
    package = OptionalPackage("torch", "torch", "training")
    assert doctor_cmd.install_command(package, declared, by_distribution) == "pip install 'himl[lightning]'"


def test_finding_packages_imports_none_of_them() -> None:
    code = (
        "import sys\n"
        "from himl_kernel.cli.main import main\n"
        "from himl_kernel.cli.doctor_cmd import find_module\n"
        "assert find_module('mlflow.tracking') is not None\n"
        "assert find_module('mlflow.no_such_module') is None\n"
        "main(['doctor'])\n"
        "heavy = ('torch', 'mlflow', 'lightning', 'tensorboard', 'azure', 'azureml', 'openslide', 'sqlalchemy')\n"
        "print('IMPORTED', sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "IMPORTED []" in result.stdout


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
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://alice:s3cret@mlflow.example.org:5000/api")
    code = main(["doctor"])
    out = capsys.readouterr().out
    assert code == 0
    assert "https://alice:***@mlflow.example.org:5000/api" in out and "s3cret" not in out
    assert any(line.split()[:2] == ["ok", "MLFLOW_TRACKING_URI"] for line in out.splitlines())
