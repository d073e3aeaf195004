"""``himl run``: its help, the run's outputs/config.yaml that --config reads back, bad config files, field clashes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from himl_kernel import hookimpl
from himl_kernel.cli.main import main
from himl_kernel.container import Container
from himl_kernel.runstore import RunStore

from ..conftest import error_lines, run_himl


def _newest_outputs(experiment: str) -> Path:
    store = RunStore()
    run = store.list_runs(experiment, max_results=1)[0]
    return store.folders(run)[0]


def test_run_help_shows_model_and_config(himl_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--model NAME" in text and "--config FILE" in text and "--compute BACKEND" in text


def test_model_help_groups_fields_with_types_and_defaults(himl_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--model", "PlainHelloWorld", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "PydanticUndefined" not in text and "--config FILE" in text
    assert "CrossValidation fields:" in text and "PlainHelloWorld fields:" in text
    assert "--max_epochs int passes over the training data (default: 20)" in text
    assert "--crossval_index int|None" in text


def test_the_runs_config_yaml_reproduces_it(himl_home: Path) -> None:
    args = ["--max_epochs", "3", "--noise", "0.25", "--learning_rate", "0.1", "--random_seed", "5"]
    assert main(["run", "--model", "PlainHelloWorld", *args]) == 0
    first = _newest_outputs("PlainHelloWorld")
    config = first / "config.yaml"
    text = config.read_text(encoding="utf-8")
    assert "max_epochs: 3\n" in text and "noise: 0.25\n" in text and "num_samples: 400\n" in text
    assert main(["run", "--model", "PlainHelloWorld", "--config", str(config)]) == 0
    second = _newest_outputs("PlainHelloWorld")
    assert second != first
    assert (second / "config.yaml").read_text(encoding="utf-8") == text
    assert (second / "model.json").read_text(encoding="utf-8") == (first / "model.json").read_text(encoding="utf-8")
    assert (second / "dataset.csv").read_bytes() == (first / "dataset.csv").read_bytes()


def test_each_crossvalidation_child_writes_its_own_config(himl_home: Path) -> None:
    assert main(["run", "--model", "PlainHelloWorld", "--max_epochs", "1", "--crossval_count", "2"]) == 0
    store = RunStore()
    children = [r for r in store.list_runs("PlainHelloWorld") if r.parent_run_id]
    indices = sorted(
        line for r in children for line in (store.folders(r)[0] / "config.yaml").read_text().splitlines()
        if line.startswith("crossval_index:")
    )  # fmt: skip
    assert indices == ["crossval_index: 0", "crossval_index: 1"]


def test_a_config_file_that_is_not_utf8_is_one_line_and_runs_nothing(tmp_path: Path) -> None:
    config = tmp_path / "x.yaml"
    config.write_bytes(b"max_epochs: 2\nnote: caf\xe9\n")
    env = {"HIML_HOME": str(tmp_path / "home")}
    result = run_himl("run", "--model", "PlainHelloWorld", "--config", "x.yaml", cwd=tmp_path, env=env)
    assert result.returncode != 0
    assert error_lines(result.stderr) == ["himl: error: config file 'x.yaml' is not UTF-8 text"], result.stderr
    assert not (tmp_path / "home").exists()


class ShadowsAnOption(Container):
    """A model whose field would be taken by himl run's own --num_nodes."""

    num_nodes: int = Field(1, description="hi-ml had this on the container")

    def run(self, run_info: object) -> None:
        raise AssertionError("never runs")


class ShadowsAPluginOption(Container):
    """A model whose field would be taken by the azure_v2 plugin's --workspace-config."""

    workspace_config: str = ""

    def run(self, run_info: object) -> None:
        raise AssertionError("never runs")


class ShadowModels:
    @hookimpl
    def himl_register_containers(self, registry) -> None:  # type: ignore[no-untyped-def]
        registry.add("ShadowsAnOption", ShadowsAnOption, "a field named like a kernel option")
        registry.add("ShadowsAPluginOption", ShadowsAPluginOption, "a field named like a plugin's option")


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            "ShadowsAnOption",
            "field 'num_nodes' of ShadowsAnOption would be the option --num_nodes, but --num_nodes is himl run's; "
            "rename the field",
        ),
        (
            "ShadowsAPluginOption",
            "field 'workspace_config' of ShadowsAPluginOption would be the option --workspace_config, "
            "but --workspace-config is plugin azure_v2's; rename the field",
        ),
    ],
)
def test_a_field_named_like_someone_elses_option_is_refused_when_loaded_for_a_run(
    himl_home: Path, model: str, expected: str
) -> None:
    import argparse

    import himl_azure_v2.plugin

    from himl_kernel.cli.run_cmd import run_run
    from himl_kernel.errors import HimlError
    from himl_kernel.testing import fresh_host

    host = fresh_host(himl_azure_v2.plugin, ShadowModels(), names=["azure_v2", "shadow"])
    for extra in ([], ["--help"], ["--num_nodes", "2"]):
        with pytest.raises(HimlError) as info:
            run_run(argparse.Namespace(model=model, config=None, extra_args=extra), host)
        assert str(info.value) == expected


def test_no_registered_container_clashes_with_an_option(himl_home: Path) -> None:
    from himl_kernel.argparsing import HimlArgumentParser
    from himl_kernel.cli.job_options import add_job_options
    from himl_kernel.cli.run_cmd import taken_options
    from himl_kernel.fields import check_option_clashes
    from himl_kernel.plugins import build_host

    host = build_host()
    parser = HimlArgumentParser(prog="himl run", add_help=False)
    add_job_options(parser, host, "run")
    taken = taken_options(parser, host)
    assert taken["--num_nodes"] == "himl run" and taken["--model"] == "himl run"
    assert any(owner.startswith("plugin ") for owner in taken.values())
    for name in host.containers.names():
        check_option_clashes(host.containers.get(name), taken, model_name=name)


class Opaque:
    """A value pydantic cannot write as JSON."""


class HoldsAnOpaqueValue(Container):
    """A container with a field YAML cannot hold."""

    handle: Opaque | None = None

    def run(self, run_info: object) -> None:
        (Path(run_info.output_folder) / "ran.txt").write_text("yes", encoding="utf-8")  # type: ignore[attr-defined]


def test_a_run_whose_fields_yaml_cannot_hold_warns_and_still_runs(
    himl_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from himl_kernel.runinfo import RunInfo
    from himl_kernel.runner import run_container
    from himl_kernel.testing import fresh_host

    store = RunStore()
    stored = store.create_run("Opaque", "opaque")
    outputs, logs = store.folders(stored)
    info = RunInfo(
        run_id=stored.run_id, backend="local", output_folder=outputs, logs_folder=logs, tracking_uri=store.tracking_uri
    )
    run_container(fresh_host(), HoldsAnOpaqueValue(handle=Opaque()), info)
    assert store.get(stored.run_id).params["handle"].startswith("<tests.kernel.test_run_config.Opaque object")
    assert (outputs / "ran.txt").read_text(encoding="utf-8") == "yes" and not (outputs / "config.yaml").exists()
    warnings = [line for line in capsys.readouterr().err.splitlines() if "config.yaml" in line]
    assert len(warnings) == 1 and warnings[0].startswith("himl: warning: outputs/config.yaml not written: ")


def test_a_field_value_that_cannot_go_on_a_command_line_is_one_line() -> None:
    from himl_kernel.errors import HimlError
    from himl_kernel.fields import non_default_arguments

    with pytest.raises(HimlError) as info:
        non_default_arguments(HoldsAnOpaqueValue(handle=Opaque()))
    assert str(info.value) == (
        "field 'handle' of HoldsAnOpaqueValue holds a Opaque, which cannot be passed to a job on its command line"
    )
