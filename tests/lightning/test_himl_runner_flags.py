"""hi-ml runner flags: --different_seeds's seeds, get_parameter_tuning_args's v2 dict, --tag VALUE, --log_from_vm."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.ai.ml.sweep import Choice, LogUniform, Uniform

from himl_kernel import hookimpl
from himl_kernel.cli.job_options import split_tags
from himl_kernel.cli.main import main
from himl_kernel.current import ENV_LOGGERS, LOG_FROM_VM_LOGGER, add_logger
from himl_kernel.errors import HimlError
from himl_kernel.lightning.hello import HelloWorld
from himl_kernel.registry import Registry
from himl_kernel.sweep import (
    GOAL_ARG,
    MAX_TOTAL_TRIALS_ARG,
    PARAM_SAMPLING_ARG,
    PRIMARY_METRIC_ARG,
    SAMPLING_ALGORITHM_ARG,
)
from himl_kernel.sweep import (
    Uniform as SweepUniform,
)
from himl_kernel.testing import fresh_host

from ..conftest import error_lines


def test_different_seeds_runs_with_hi_mls_seeds_zero_to_n_minus_one() -> None:
    sweep = HelloWorld(different_seeds=3, random_seed=7).get_sweep()
    assert sweep is not None and sweep.trials() == [{"random_seed": 0}, {"random_seed": 1}, {"random_seed": 2}]


class TunedHello(HelloWorld):
    """A container with hi-ml's SDK v2 get_parameter_tuning_args, as the manual writes it."""

    def get_parameter_tuning_args(self) -> dict[str, Any]:
        values = [0.1, 0.5, 0.9]
        return {
            MAX_TOTAL_TRIALS_ARG: len(values),
            PARAM_SAMPLING_ARG: {"l_rate": Choice(values)},
            SAMPLING_ALGORITHM_ARG: "grid",
            PRIMARY_METRIC_ARG: "val/loss",
            GOAL_ARG: "Minimize",
        }


def test_hi_ml_v2_tuning_args_become_the_sweep() -> None:
    sweep = TunedHello(hyperdrive=True).get_sweep()
    assert sweep is not None
    assert sweep.trials() == [{"l_rate": 0.1}, {"l_rate": 0.5}, {"l_rate": 0.9}]
    assert (sweep.sampling, sweep.primary_metric, sweep.goal, sweep.max_trials) == ("grid", "val/loss", "minimize", 3)
    assert TunedHello().get_sweep() is None  # without --hyperdrive, no sweep
    # with folds: every value in every fold
    both = TunedHello(hyperdrive=True, crossval_count=2).get_sweep()
    assert (
        both is not None
        and both.parameters["crossval_index"] == [0, 1]
        and both.parameters["l_rate"]
        == [
            0.1,
            0.5,
            0.9,
        ]
    )


class RandomHello(HelloWorld):
    def get_parameter_tuning_args(self) -> dict[str, Any]:
        return {
            MAX_TOTAL_TRIALS_ARG: 4,
            PARAM_SAMPLING_ARG: {
                "l_rate": LogUniform(min_value=-5, max_value=-1),
                "noise": Uniform(min_value=0.0, max_value=0.2),
                "batch_size": Choice([8, 16]),
            },
            SAMPLING_ALGORITHM_ARG: "random",
            PRIMARY_METRIC_ARG: "val/loss",
            GOAL_ARG: "maximize",
        }


def test_hi_ml_v2_random_search_keeps_its_ranges() -> None:
    import math

    sweep = RandomHello(hyperdrive=True).get_sweep()
    assert sweep is not None and sweep.sampling == "random" and sweep.goal == "maximize"
    assert sweep.parameters["l_rate"] == SweepUniform(math.exp(-5), math.exp(-1), log=True)
    assert sweep.parameters["noise"] == SweepUniform(0.0, 0.2)
    trials = sweep.trials()
    assert len(trials) == 4
    assert all(math.exp(-5) <= t["l_rate"] <= math.exp(-1) and t["batch_size"] in (8, 16) for t in trials)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({PARAM_SAMPLING_ARG: {"l_rate": Choice([1])}, "max_trials": 3}, r"unknown keys \['max_trials'\]"),
        ({PARAM_SAMPLING_ARG: {"l_rate": Choice([1])}, SAMPLING_ALGORITHM_ARG: "bayesian"}, "'bayesian' is not"),
        ({PARAM_SAMPLING_ARG: {}}, "must be a non-empty dict"),
        ({PARAM_SAMPLING_ARG: {"l_rate": 0.1}}, "parameter 'l_rate' is a float; expected a Choice"),
        ({PARAM_SAMPLING_ARG: {"l_rate": [1]}, MAX_TOTAL_TRIALS_ARG: "3"}, "must be a whole number"),
    ],
)
def test_bad_hi_ml_tuning_args_are_one_line(args: dict[str, Any], message: str) -> None:
    class Bad(HelloWorld):
        def get_parameter_tuning_args(self) -> dict[str, Any]:
            return args

    with pytest.raises(HimlError, match=message) as info:
        Bad(hyperdrive=True).get_sweep()
    assert "\n" not in str(info.value)


def test_free_text_tag_is_the_display_name_and_a_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert split_tags(["team=a", "my_first_run"]) == ({"team": "a"}, "my_first_run")
    with pytest.raises(HimlError, match="one free-text tag"):
        split_tags(["a", "b"])
    with pytest.raises(HimlError, match="should look like KEY=VALUE"):
        split_tags(["=x"])
    monkeypatch.chdir(tmp_path)  # a small snapshot for the dry run
    code = main(["run", "--model", "HelloWorld", "--tag", "my_first_run", "--tag", "team=a", "--dry-run"])
    assert code == 0
    job = yaml.safe_load(capsys.readouterr().out)["job"]
    assert job["display_name"] == "my_first_run"
    assert job["tags"]["tag"] == "my_first_run" and job["tags"]["team"] == "a"


class MirrorLogger:
    """A plugin offering the logger --log_from_vm asks for."""

    @hookimpl
    def himl_register_loggers(self, registry: Registry[Any]) -> None:
        registry.add(LOG_FROM_VM_LOGGER, "himl_kernel.metric_sinks:mlflow_sink", "a stand-in mirror", default=False)


def test_log_from_vm_adds_the_workspace_logger_to_this_machines_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_LOGGERS, raising=False)
    host = fresh_host(MirrorLogger(), names=["mirror"])
    assert add_logger(host, LOG_FROM_VM_LOGGER, "--log_from_vm")[-1] == LOG_FROM_VM_LOGGER
    assert os.environ[ENV_LOGGERS].split(",")[-1] == LOG_FROM_VM_LOGGER  # child processes inherit the choice
    assert "mlflow" in os.environ[ENV_LOGGERS].split(",")  # on top of the default loggers
    add_logger(host, LOG_FROM_VM_LOGGER, "--log_from_vm")
    assert os.environ[ENV_LOGGERS].count(LOG_FROM_VM_LOGGER) == 1


def test_log_from_vm_without_a_plugin_that_offers_it_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(ENV_LOGGERS, raising=False)
    with pytest.raises(HimlError) as info:
        add_logger(fresh_host(), LOG_FROM_VM_LOGGER, "--log_from_vm")
    assert str(info.value) == (
        "--log_from_vm needs the 'azureml' logger, which no installed plugin offers (pip install himl-azure-v2)"
    )
    monkeypatch.setenv("HIML_DISABLE_PLUGINS", "azure_v2")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--model", "HelloWorld", "--log_from_vm", "--dry-run"]) != 0
    assert error_lines(capsys.readouterr().err) == [f"himl: error: {info.value}"]


class V1Backend:
    """A plugin offering a backend named as himl-azure-v1's."""

    @hookimpl
    def himl_register_compute_backends(self, registry: Registry[Any]) -> None:
        registry.add("azureml-v1", "himl_kernel.backends.local:LocalBackend", "a stand-in SDK v1 backend")


def _run_options(*argv: str) -> Any:
    from himl_kernel.argparsing import HimlArgumentParser
    from himl_kernel.cli.job_options import add_job_options

    host = fresh_host()
    parser = HimlArgumentParser(prog="himl run", add_help=False)
    add_job_options(parser, host, "run")
    return parser.parse_args(list(argv))


def test_strictly_aml_v1_picks_the_sdk_v1_backend_when_one_is_installed() -> None:
    from himl_kernel.cli.job_options import default_compute

    args = _run_options("--cluster", "gpu", "--strictly_aml_v1")
    default_compute(args, fresh_host(V1Backend(), names=["v1"]))
    assert args.compute == "azureml-v1"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--cluster", "gpu", "--strictly_aml_v1"],
            "--strictly_aml_v1 needs the AzureML SDK v1 backend 'azureml-v1', which is not installed: "
            "pip install himl-azure-v1 (`himl plugins` shows one that failed to load)",
        ),
        (
            ["--strictly_aml_v1"],
            "--strictly_aml_v1 chooses the AzureML SDK v1 for a submission: give --cluster NAME too",
        ),
        (
            ["--cluster", "gpu", "--compute", "azureml", "--strictly-aml-v1"],
            "--strictly_aml_v1 submits with backend 'azureml-v1', but --compute names 'azureml'",
        ),
    ],
)
def test_strictly_aml_v1_that_cannot_be_honoured_is_one_line(argv: list[str], message: str) -> None:
    from himl_kernel.cli.job_options import default_compute

    with pytest.raises(HimlError) as info:
        default_compute(_run_options(*argv), fresh_host())
    assert str(info.value) == message


def test_strictly_aml_v1_on_the_command_line_without_the_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HIML_DISABLE_PLUGINS", "azure_v1")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--model", "HelloWorld", "--cluster", "gpu", "--strictly_aml_v1", "--dry-run"]) != 0
    (line,) = error_lines(capsys.readouterr().err)
    assert line.startswith("himl: error: --strictly_aml_v1 needs the AzureML SDK v1 backend 'azureml-v1'")
