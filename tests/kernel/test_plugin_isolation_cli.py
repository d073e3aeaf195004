"""The real ``himl``, with misbehaving plugins installed: every command still works.

A folder on PYTHONPATH holds plugin modules and their ``.dist-info`` folders,
so discovery finds them through importlib.metadata as it finds any installed
distribution. Installed are: one plugin that raises in each guarded hook, one
whose import calls ``sys.exit``, and two (``himl-twin-a``, ``himl-twin-b``)
that add the same option and register the same model name. Each command must
succeed (or fail only for its own reason), say each problem in one warning
line naming the plugin, and never print a traceback.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from himl_kernel.testing import write_distribution
from tests.conftest import run_himl

#: hook -> the plugin that raises in it.
RAISERS = {
    "himl_detect_run": "raise_detect_run",
    "himl_locate_run": "raise_locate_run",
    "himl_add_options": "raise_add_options",
    "himl_configure_job": "raise_configure_job",
    "himl_job_submitted": "raise_job_submitted",
    "himl_doctor": "raise_doctor",
    "himl_register_commands": "raise_register_commands",
}
HOOK_ARGUMENTS = {
    "himl_detect_run": "environ",
    "himl_locate_run": "run_id",
    "himl_add_options": "parser, command",
    "himl_configure_job": "job, options",
    "himl_job_submitted": "job, submission",
    "himl_doctor": "report",
    "himl_register_commands": "registry",
}
CLASH = (
    "himl: warning: option --twin-level is added by plugins 'twin_a' (himl-twin-a 1.0) and "
    "'twin_b' (himl-twin-b 2.0); neither is added"
)
KERNEL_CLASH = (
    "himl: warning: option --cluster of plugin 'twin_b' (himl-twin-b 2.0) is not added: the kernel has it "
    "(shared options are read from the JobSpec)"
)
MODEL_CLASH = (
    "himl: warning: model 'TwinModel' of plugin twin_b (himl-twin-b) is not registered: "
    "plugin twin_a (himl-twin-a) registered it first; pick one with himl-twin-b:TwinModel"
)
QUITTER = "himl: warning: plugin 'quitter' (himl-quitter 0.1) is broken: raised on import: SystemExit: 3"


def broken_line(hook: str) -> str:
    plugin = RAISERS[hook]
    dist = plugin.replace("_", "-")
    return (
        f"himl: warning: plugin '{plugin}' (himl-{dist} 0.1) is broken: "
        f"{hook} raised RuntimeError: {plugin} fails on purpose"
    )


def twin(letter: str, version: str, extra_option: str) -> str:
    return f"""
        from himl_kernel import hookimpl


        @hookimpl
        def himl_add_options(parser, command):
            parser.add_argument("--twin-level", default="")
            parser.add_argument("{extra_option}", default="")


        @hookimpl
        def himl_register_containers(registry):
            registry.add("TwinModel", "himl_twin_{letter}_models:TwinModel", "twin {letter}")
        """


def twin_models(letter: str) -> str:
    return f"""
        from himl_kernel.container import Container


        class TwinModel(Container):
            \"\"\"The model of twin {letter}.\"\"\"

            size: int = 1

            def run(self, run_info):
                (run_info.output_folder / "twin.txt").write_text("{letter}", encoding="utf-8")
        """


def install(site: Path, module: str, dist: str, version: str, plugin: str, source: str) -> None:
    write_distribution(site, dist, version, {plugin: module}, {f"{module}.py": source})


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("misbehaving_plugins")
    for hook, plugin in RAISERS.items():
        source = f"""
            from himl_kernel import hookimpl


            @hookimpl
            def {hook}({HOOK_ARGUMENTS[hook]}):
                raise RuntimeError("{plugin} fails on purpose\\nwith a second line")
            """
        install(folder, f"himl_{plugin}", f"himl-{plugin.replace('_', '-')}", "0.1", plugin, source)
    install(folder, "himl_quitter", "himl-quitter", "0.1", "quitter", "import sys\n\nsys.exit(3)\n")
    install(folder, "himl_twin_a", "himl-twin-a", "1.0", "twin_a", twin("a", "1.0", "--twin-a-depth"))
    install(folder, "himl_twin_b", "himl-twin-b", "2.0", "twin_b", twin("b", "2.0", "--cluster"))
    for letter in "ab":
        (folder / f"himl_twin_{letter}_models.py").write_text(
            textwrap.dedent(twin_models(letter)).lstrip(), encoding="utf-8"
        )
    return folder


def himl(site: Path, cwd: Path, *args: str) -> tuple[int, str, list[str]]:
    """(exit code, stdout, stderr lines) of ``himl ARGS`` seeing the plugins in ``site``."""
    env = {"PYTHONPATH": str(site), "HIML_HOME": str(cwd / "store"), "HIML_CACHE": str(cwd / "cache")}
    result = run_himl(*args, cwd=cwd, env=env)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout, result.stderr.splitlines()


def warnings_of(stderr: list[str]) -> list[str]:
    return [line for line in stderr if line.startswith("himl: warning:")]


def assert_warned(stderr: list[str], expected: list[str]) -> None:
    """Exactly these warnings, each once, and every other stderr line is no warning or error about plugins."""
    assert sorted(warnings_of(stderr)) == sorted(expected)
    assert len(set(warnings_of(stderr))) == len(warnings_of(stderr))


# --- command by command ---------------------------------------------------------------


def test_plugins_lists_every_misbehaving_plugin_and_the_rest_as_ok(site: Path, tmp_path: Path) -> None:
    code, out, err = himl(site, tmp_path, "plugins")

    assert code == 0
    assert_warned(
        err,
        [
            QUITTER,
            CLASH,
            KERNEL_CLASH,
            MODEL_CLASH,
            *(broken_line(h) for h in ("himl_detect_run", "himl_add_options", "himl_register_commands")),
        ],
    )
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    for plugin in ("quitter", "raise_detect_run", "raise_add_options", "raise_register_commands"):
        assert rows[plugin].split()[1] == "broken", rows[plugin]
    assert rows["quitter"].endswith("raised on import: SystemExit: 3")
    assert rows["raise_detect_run"].endswith("himl_detect_run raised RuntimeError: raise_detect_run fails on purpose")
    for plugin in ("twin_a", "twin_b", "hello", "local", "raise_doctor", "raise_job_submitted"):
        assert rows[plugin].split()[1] == "ok", rows[plugin]
    assert "models: TwinModel; options: --twin-a-depth" in rows["twin_a"]
    assert "options" not in rows["twin_b"]  # both of its options were refused


def test_plugins_json_says_the_same(site: Path, tmp_path: Path) -> None:
    code, out, _ = himl(site, tmp_path, "plugins", "--json")

    assert code == 0
    status = {row["name"]: row["status"] for row in json.loads(out)}
    assert status["quitter"] == status["raise_add_options"] == "broken"
    assert status["twin_a"] == status["twin_b"] == "ok"


def test_models_lists_one_twin_and_says_how_to_pick_the_other(site: Path, tmp_path: Path) -> None:
    code, out, err = himl(site, tmp_path, "models")

    assert code == 0
    assert_warned(err, [QUITTER, MODEL_CLASH])
    lines = out.splitlines()
    assert any(line.startswith("TwinModel") and "[twin_a]  twin a" in line for line in lines)
    assert "(also himl-twin-b:TwinModel [twin_b]: the name is plugin twin_a's)" in lines
    assert any(line.startswith("HelloWorld") for line in lines)
    assert f"(not listed: {QUITTER.removeprefix('himl: warning: ')})" in lines


def test_run_help_shows_each_plugins_options_under_its_name(site: Path, tmp_path: Path) -> None:
    code, out, err = himl(site, tmp_path, "run", "--help")

    assert code == 0
    assert_warned(err, [QUITTER, CLASH, KERNEL_CLASH, broken_line("himl_add_options")])
    assert "options of plugin twin_a (himl-twin-a 1.0):" in out
    assert "--twin-a-depth" in out
    assert "--twin-level" not in out
    assert "options of plugin twin_b" not in out
    assert "--cluster NAME" in out  # the kernel's


def test_run_dry_run_of_helloworld_works(site: Path, tmp_path: Path) -> None:
    code, out, err = himl(site, tmp_path, "run", "--model", "HelloWorld", "--dry-run")

    assert code == 0, err
    assert_warned(
        err,
        [
            QUITTER,
            CLASH,
            KERNEL_CLASH,
            MODEL_CLASH,
            *(broken_line(h) for h in ("himl_add_options", "himl_detect_run", "himl_configure_job")),
        ],
    )
    assert "target: HelloWorld" in out


def test_run_picks_the_rejected_twin_by_distribution(site: Path, tmp_path: Path) -> None:
    code, out, err = himl(site, tmp_path, "run", "--model", "himl-twin-b:TwinModel", "--size", "4")

    assert code == 0, "\n".join(err)
    assert "FINISHED" in out
    (written,) = (tmp_path / "store").rglob("twin.txt")
    assert written.read_text(encoding="utf-8") == "b"
    assert broken_line("himl_job_submitted") in err  # asked after the job ran, and broken by it
    assert not [line for line in err if line.startswith("himl: error")]


def test_doctor_reports_the_failing_checks_and_carries_on(site: Path, tmp_path: Path) -> None:
    code, out, err = himl(site, tmp_path, "doctor", "--json")

    assert code == 1  # problems found: the exit code says so, the report is complete
    assert broken_line("himl_doctor") in err and QUITTER in err
    rows = {row["topic"]: row for row in json.loads(out)["checks"]}
    assert rows["plugin raise_doctor checks"]["status"] == "problem"
    assert (
        "himl_doctor raised RuntimeError: raise_doctor fails on purpose" in rows["plugin raise_doctor checks"]["detail"]
    )
    assert rows["plugin quitter"]["status"] == "problem"
    assert rows["plugin twin_a"]["status"] == "ok"


def test_runs_list_works(site: Path, tmp_path: Path) -> None:
    code, _, err = himl(site, tmp_path, "runs", "list")

    assert code == 0, err
    assert_warned(err, [QUITTER])


def test_runs_download_of_an_unknown_id_asks_the_others_and_fails_only_for_its_reason(
    site: Path, tmp_path: Path
) -> None:
    code, _, err = himl(site, tmp_path, "runs", "download", "0123456789abcdef0123456789abcdef")

    assert code == 2
    assert broken_line("himl_locate_run") in err
    errors = [line for line in err if line.startswith("himl: error:")]
    assert len(errors) == 1 and "0123456789abcdef0123456789abcdef" in errors[0]


def test_run_takes_a_dotted_class_path_and_refuses_what_is_no_container(site: Path, tmp_path: Path) -> None:
    code, out, err = himl(site, tmp_path, "run", "--model", "himl_twin_a_models.TwinModel", "--dry-run")

    assert code == 0, "\n".join(err)
    assert "target: himl_twin_a_models.TwinModel" in out

    code, out, err = himl(site, tmp_path, "run", "--model", "himl_twin_a_models.Container", "--dry-run")

    assert code == 2 and out == ""
    assert [line for line in err if not line.startswith("himl: warning:")] == [
        "himl: error: model 'himl_twin_a_models.Container' is <class 'himl_kernel.container.Container'>, "
        "which is not a subclass of himl_kernel.container.Container"
    ]
