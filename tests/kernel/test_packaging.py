"""Packaging as users install it.

The extras name the plugin distributions by name and version range (an index
refuses direct references); no plugin's requirement on ``himl`` can be met by
the public index's unrelated ``himl``; a checkout installs everything through
``requirements-dev.txt``, which the README's Quickstart and CI use; one MLflow
pin; ``himl --version`` and ``himl doctor`` say which distribution is installed.
The wheelhouse install itself is ``.ci/wheelhouse_check``, run by ``.ci/run``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import himl_kernel
from himl_kernel.cli import doctor_cmd
from himl_kernel.cli.main import main
from himl_kernel.distribution import CONSOLE_SCRIPT, check_kernel_distribution, inspect_kernel
from himl_kernel.doctor import DoctorReport

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the test extra installs tomli on 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_FOLDERS = sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))

#: The releases of the unrelated ``himl`` (a hierarchical YAML configuration tool) on the public index.
_PUBLIC_HIML = (
    "0.1.15 0.1.16 0.1.17 0.1.18 0.2.0 0.2.1 0.2.2 0.3.0 0.4.0 0.5.0 0.5.1 0.5.2 0.5.3 0.5.4 0.5.5 0.5.6 "
    "0.6.0 0.6.2 0.7.0 0.7.1 0.7.2 0.7.3 0.8.0 0.8.1 0.9.0 0.10.0 0.11.0 0.11.1 0.12.0 0.13.0 0.14.0 "
    "0.15.0 0.15.1 0.15.2 0.16.0 0.16.2 0.16.3 0.16.4 0.17.0 0.18.0 0.19.0 0.20.0 0.21.0 0.22.0"
)
PUBLIC_HIML_RELEASES = tuple(_PUBLIC_HIML.split())


def _project(folder: Path) -> dict[str, Any]:
    with (folder / "pyproject.toml").open("rb") as handle:
        return dict(tomllib.load(handle)["project"])


def _all_requirements(project: dict[str, Any]) -> list[Requirement]:
    strings = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        strings.extend(extra)
    return [Requirement(s) for s in strings]


def _himl_requirement(project: dict[str, Any]) -> Requirement:
    found = [r for r in _all_requirements(project) if canonicalize_name(r.name) == "himl"]
    assert len(found) == 1, f"{project['name']} should require himl exactly once, found {[str(r) for r in found]}"
    return found[0]


def test_there_are_plugins_to_check() -> None:
    assert {_project(folder)["name"] for folder in PLUGIN_FOLDERS} >= {"himl-cpath", "himl-azure-v2"}


def test_every_plugin_has_an_extra_that_names_it_by_distribution_and_version_range() -> None:
    kernel = _project(ROOT)
    by_name: dict[str, Requirement] = {}
    for extra, strings in kernel["optional-dependencies"].items():
        for requirement in map(Requirement, strings):
            if canonicalize_name(requirement.name).startswith("himl-"):
                assert requirement.url is None, f"extra {extra!r}: {requirement} is a direct reference"
                by_name[canonicalize_name(requirement.name)] = requirement
    for folder in PLUGIN_FOLDERS:
        plugin = _project(folder)
        requirement = by_name.get(canonicalize_name(plugin["name"]))
        assert requirement is not None, f"no extra of himl names {plugin['name']} ({folder})"
        this = Version(plugin["version"])
        next_minor = Version(f"{this.major}.{this.minor + 1}")
        assert requirement.specifier.contains(this), f"{requirement} refuses {plugin['name']} {this}"
        assert not requirement.specifier.contains(next_minor), f"{requirement} has no upper bound below {next_minor}"


def test_no_distribution_declares_a_direct_reference() -> None:
    for folder in [ROOT, *PLUGIN_FOLDERS]:
        with (folder / "pyproject.toml").open("rb") as handle:
            data = tomllib.load(handle)
        direct = [str(r) for r in _all_requirements(data["project"]) if r.url is not None]
        assert direct == [], f"{folder / 'pyproject.toml'}: a package index refuses {direct}"
        allowed = data.get("tool", {}).get("hatch", {}).get("metadata", {}).get("allow-direct-references")
        assert not allowed, f"{folder / 'pyproject.toml'} allows direct references"


@pytest.mark.parametrize("folder", PLUGIN_FOLDERS, ids=lambda f: f.name)
def test_plugin_requires_this_kernel_and_never_the_public_himl(folder: Path) -> None:
    requirement = _himl_requirement(_project(folder))
    assert requirement.url is None
    assert requirement.specifier.contains(himl_kernel.__version__), f"{requirement} refuses this kernel"
    admitted = [v for v in PUBLIC_HIML_RELEASES if requirement.specifier.contains(v)]
    assert admitted == [], f"{folder.name}: {requirement} admits the public index's unrelated himl {admitted}"


def test_the_kernel_version_is_one_number_everywhere() -> None:
    assert _project(ROOT)["version"] == himl_kernel.__version__
    assert metadata.version("himl") == himl_kernel.__version__, "the installed metadata is stale: reinstall"


# -- the checkout's install: requirements-dev.txt, constraints.txt, README, CI -----------------


def _requirement_lines(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [" ".join(line.split()) for line in lines if line]


def test_requirements_dev_installs_the_kernel_and_every_plugin_editable_under_the_constraints() -> None:
    lines = _requirement_lines(ROOT / "requirements-dev.txt")
    assert "-c constraints.txt" in lines
    assert "-e .[test]" in lines
    for folder in PLUGIN_FOLDERS:
        editable = f"-e ./plugins/{folder.name}"
        assert any(line == editable or line.startswith(editable + "[") for line in lines), (
            f"requirements-dev.txt does not install plugins/{folder.name}"
        )
    assert all(line.startswith(("-c ", "-e ")) for line in lines), f"only constraints and editables: {lines}"


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in _requirement_lines(ROOT / "constraints.txt"):
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"constraints.txt: {line} is not a pin"
        pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def test_constraints_pin_one_mlflow_that_the_azureml_plugin_accepts() -> None:
    pins = _pins()
    family = {pins.get(name) for name in ("mlflow", "mlflow-skinny", "mlflow-tracing")}
    assert len(family) == 1 and None not in family, f"mlflow, mlflow-skinny and mlflow-tracing pins: {family}"
    (mlflow,) = family
    caps = [r for r in map(Requirement, metadata.requires("azureml-mlflow") or []) if r.name.startswith("mlflow")]
    assert caps, "azureml-mlflow names no mlflow requirement: the pin's reason has changed"
    for cap in caps:
        assert cap.specifier.contains(mlflow), f"azureml-mlflow needs {cap}, constraints.txt pins {mlflow}"


def test_this_environment_was_installed_under_the_constraints() -> None:
    for name, pinned in _pins().items():
        assert metadata.version(name) == pinned, f"{name} {metadata.version(name)} is installed, pinned {pinned}"


def _quickstart_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)


def test_readme_quickstart_is_two_commands_through_requirements_dev() -> None:
    commands = _quickstart_commands()
    assert len(commands) == 2, commands
    main_job, tests = (" ".join(c.split()) for c in commands)
    for command in (main_job, tests):
        assert "pip install -r requirements-dev.txt" in command
    assert main_job.endswith("himl run --model HelloWorld"), main_job
    assert tests.endswith(".venv/bin/python -m pytest -q"), tests


def _words(text: str) -> set[str]:
    return {word.strip("()") for word in text.split()}


def test_ci_runs_the_readme_test_command_and_the_wheelhouse_check() -> None:
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if not line.startswith("#")]
    _, tests = _quickstart_commands()
    for part in re.split(r"&&", tests):
        words = _words(part)
        # each step of the README's command is a line of .ci/run, which may add quieting options
        assert any(words <= _words(line) for line in ci_lines), f".ci/run does not run the README's `{part.strip()}`"
    assert any(line.startswith("bash .ci/wheelhouse_check") for line in ci_lines)


def test_the_kernel_sdist_and_wheel_carry_no_direct_reference(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("himl-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        requires = [
            line.split(":", 1)[1].strip()
            for line in archive.read(f"{dist_info}/METADATA").decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    assert all(Requirement(r).url is None for r in requires), requires
    cpath = [Requirement(r) for r in requires if Requirement(r).name == "himl-cpath"]
    assert any(r.marker is not None and r.marker.evaluate({"extra": "cpath"}) for r in cpath), requires
    assert f"himl = {CONSOLE_SCRIPT}" in entry_points
    assert all(n.startswith(("himl_kernel/", dist_info)) for n in names), "the wheel holds only the kernel"
    (sdist,) = out.glob("himl-*.tar.gz")
    import tarfile

    with tarfile.open(sdist) as archive:
        members = [m.split("/", 1)[1] for m in archive.getnames() if "/" in m]
    assert "himl_kernel/__init__.py" in members
    assert not any(m.startswith(("plugins/", "tests/", ".ci/")) for m in members), "the sdist holds only the kernel"


# -- which distribution is installed: himl --version and himl doctor ----------------------------


def _dist_info(tmp_path: Path, version: str, console_script: str | None, direct_url: str | None = None) -> Path:
    folder = tmp_path / "site-packages" / f"himl-{version}.dist-info"
    folder.mkdir(parents=True)
    (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: himl\nVersion: {version}\n")
    if console_script is not None:
        (folder / "entry_points.txt").write_text(f"[console_scripts]\nhiml = {console_script}\n")
    if direct_url is not None:
        (folder / "direct_url.json").write_text(direct_url)
    return folder


def test_version_names_the_kernel_and_its_installed_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    line = capsys.readouterr().out.strip()
    install = inspect_kernel()
    assert line == install.version_line()
    assert line.startswith(f"himl {himl_kernel.__version__} (himl kernel; distribution himl {himl_kernel.__version__}")
    assert install.is_ours
    # the dev install is editable from this checkout; a wheel install names its site-packages
    assert install.editable_from == ROOT or str(install.distribution_dir) in line


def test_the_public_index_himl_is_named_as_another_project(tmp_path: Path) -> None:
    foreign = metadata.PathDistribution(_dist_info(tmp_path, "0.22.0", "himl.main:run"))
    install = inspect_kernel(foreign)
    assert not install.is_ours
    assert install.foreign is not None
    assert "'himl' 0.22.0 is another project" in install.foreign and "himl.main:run" in install.foreign
    assert install.version_line().startswith(f"himl {himl_kernel.__version__} (himl kernel; package at ")
    report = DoctorReport()
    check_kernel_distribution(report, install)
    (row,) = report.rows
    assert (row.topic, row.status) == ("himl", "problem")
    assert "another project" in row.detail and row.fix.startswith("pip uninstall himl, then install")
    assert report.exit_code == 1


def test_a_himl_without_our_command_is_another_project(tmp_path: Path) -> None:
    install = inspect_kernel(metadata.PathDistribution(_dist_info(tmp_path, "0.1.0", None)))
    assert install.foreign is not None and "declares no `himl` command" in install.foreign


def test_a_stale_install_of_ours_is_a_problem_too(tmp_path: Path) -> None:
    install = inspect_kernel(metadata.PathDistribution(_dist_info(tmp_path, "0.0.9", CONSOLE_SCRIPT)))
    assert install.foreign is not None and "says version 0.0.9" in install.foreign


def test_a_wheel_install_of_ours_names_its_folder(tmp_path: Path) -> None:
    install = inspect_kernel(metadata.PathDistribution(_dist_info(tmp_path, himl_kernel.__version__, CONSOLE_SCRIPT)))
    assert install.is_ours and install.editable_from is None
    site = tmp_path / "site-packages"
    assert install.where() == f"distribution himl {himl_kernel.__version__} in {site}"
    report = DoctorReport()
    check_kernel_distribution(report, install)
    assert [(r.topic, r.status) for r in report.rows] == [("himl", "ok")]


def test_an_editable_install_names_its_source(tmp_path: Path) -> None:
    record = '{"url": "file:///src/my%20himl", "dir_info": {"editable": true}}'
    install = inspect_kernel(
        metadata.PathDistribution(_dist_info(tmp_path, himl_kernel.__version__, CONSOLE_SCRIPT, record))
    )
    assert install.editable_from == Path("/src/my himl")
    assert install.where().endswith("editable from /src/my himl")


def test_doctor_reports_the_installed_distribution() -> None:
    report = DoctorReport()
    doctor_cmd.check_himl(report)
    (row,) = [r for r in report.rows if r.topic == "himl"]
    assert row.status == "ok"
    assert row.detail == f"{himl_kernel.__version__} ({inspect_kernel().where()})"
