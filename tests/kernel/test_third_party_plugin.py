"""A plugin published on its own shows up in ``himl`` with no kernel change.

Two throwaway distributions are built with pip into a private folder: a good
one whose entry point registers the container ``ThirdPartyEcho``, and a broken
one whose entry module raises ImportError. ``himl`` then runs as a subprocess
with that folder on PYTHONPATH, so discovery goes through importlib.metadata
exactly as it would for ``pip install himl-echo``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

GOOD_DIST, GOOD_VERSION, GOOD_PLUGIN = "himl-echo", "1.4.2", "echo"
BAD_DIST, BAD_VERSION, BAD_PLUGIN = "himl-broken-thing", "0.0.7", "badthing"
BAD_ERROR = "ImportError: himl_broken_thing needs the unobtainium package"

GOOD_FILES = {
    "pyproject.toml": f"""
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"

        [project]
        name = "{GOOD_DIST}"
        version = "{GOOD_VERSION}"
        dependencies = ["himl"]

        [project.entry-points.himl]
        {GOOD_PLUGIN} = "himl_echo.plugin"

        [tool.hatch.build.targets.wheel]
        packages = ["himl_echo"]
        """,
    "himl_echo/__init__.py": '"""A third-party himl plugin used by the tests."""\n',
    "himl_echo/plugin.py": """
        from himl_kernel import hookimpl


        @hookimpl
        def himl_register_containers(registry):
            registry.add("ThirdPartyEcho", "himl_echo.models:ThirdPartyEcho", "writes its message to echo.txt")
        """,
    "himl_echo/models.py": """
        from himl_kernel.container import Container


        class ThirdPartyEcho(Container):
            \"\"\"Write a message into the run's outputs.\"\"\"

            message: str = "hi"

            def run(self, run_info):
                (run_info.output_folder / "echo.txt").write_text(self.message, encoding="utf-8")
        """,
}

BAD_FILES = {
    "pyproject.toml": f"""
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"

        [project]
        name = "{BAD_DIST}"
        version = "{BAD_VERSION}"

        [project.entry-points.himl]
        {BAD_PLUGIN} = "himl_broken_thing.plugin"

        [tool.hatch.build.targets.wheel]
        packages = ["himl_broken_thing"]
        """,
    "himl_broken_thing/__init__.py": "",
    "himl_broken_thing/plugin.py": """
        raise ImportError("himl_broken_thing needs the unobtainium package")

        from himl_kernel import hookimpl


        @hookimpl
        def himl_register_containers(registry):
            registry.add("TheBadPluginsModel", "himl_broken_thing.models:TheBadPluginsModel")
        """,
}


def write_project(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding both distributions, installed by pip without network or build isolation."""
    base = tmp_path_factory.mktemp("third_party")
    good = write_project(base / "good", GOOD_FILES)
    bad = write_project(base / "bad", BAD_FILES)
    target = base / "site"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-build-isolation",
            "--no-deps",
            "--no-index",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--quiet",
            "--target",
            str(target),
            str(good),
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (target / "himl_echo-1.4.2.dist-info").is_dir()
    return target


def himl(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``himl`` next to this interpreter, seeing the plugins in ``site``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_URI", "HIML_DISABLE_PLUGINS", "HIML_PLUGIN_AUTOLOAD", "HIML_BACKEND")
    }
    env["PYTHONPATH"] = str(site)
    env["HIML_HOME"] = str(cwd / "store")
    script = Path(sys.executable).with_name("himl")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "himl_kernel"]
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def non_warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("himl: warning:")]


def broken_line() -> str:
    return f"plugin '{BAD_PLUGIN}' ({BAD_DIST} {BAD_VERSION}) is broken: raised on import: {BAD_ERROR}"


def test_plugins_lists_the_good_plugin_ok_and_the_bad_one_broken(site: Path, tmp_path: Path) -> None:
    result = himl(site, tmp_path, "plugins")

    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    good = rows[GOOD_PLUGIN]
    assert good.split()[1] == "ok"
    assert f"{GOOD_DIST} {GOOD_VERSION}" in good
    assert "models: ThirdPartyEcho" in good
    bad = rows[BAD_PLUGIN]
    assert bad.split()[1] == "broken"
    assert f"{BAD_DIST} {BAD_VERSION}" in bad
    assert bad.endswith(f"raised on import: {BAD_ERROR}")
    assert rows["hello"].split()[1] == "ok"
    assert result.stderr.splitlines() == [f"himl: warning: {broken_line()}"]


def test_models_lists_builtin_and_third_party_models(site: Path, tmp_path: Path) -> None:
    result = himl(site, tmp_path, "models")

    assert result.returncode == 0, result.stderr
    listed = {line.split()[0]: line for line in result.stdout.splitlines() if not line.startswith("(")}
    assert {"HelloWorld", "ThirdPartyEcho"} <= set(listed)
    assert f"[{GOOD_PLUGIN}]" in listed["ThirdPartyEcho"]
    assert f"(not listed: {broken_line()})" in result.stdout.splitlines()
    assert non_warning_lines(result.stderr) == []


def test_third_party_container_runs_with_its_own_field(site: Path, tmp_path: Path) -> None:
    result = himl(site, tmp_path, "run", "--model", "ThirdPartyEcho", "--message", "hello")

    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(r"outputs in (\S+)", result.stdout)
    assert match, result.stdout
    outputs = Path(match.group(1))
    assert outputs.is_relative_to(tmp_path / "store")
    assert (outputs / "echo.txt").read_text(encoding="utf-8") == "hello"
    assert "FINISHED" in result.stdout
    assert not any(line.startswith("himl: error") for line in result.stderr.splitlines())


def test_model_of_the_broken_plugin_fails_in_one_line_naming_it(site: Path, tmp_path: Path) -> None:
    result = himl(site, tmp_path, "run", "--model", "TheBadPluginsModel")

    assert result.returncode == 2
    errors = non_warning_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("himl: error: unknown model 'TheBadPluginsModel'")
    assert broken_line() in errors[0]
    assert result.stdout == ""
    assert not (tmp_path / "store").exists()
