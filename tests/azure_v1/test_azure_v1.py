"""himl-azure-v1, first part: JobSpecs as real azureml-core ScriptRunConfig and HyperDrive objects.

What ``--dry-run`` prints is the run configuration azureml-core itself serialises
for a submission (``_serialize_run_config_to_dict``), so these tests check what
would go on the wire, field by field (test_submit_v1.py submits them to the
v1 control-plane stand-in). Inside a job, the backend marker decides which
AzureML plugin claims it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from himl_azure_v1 import create_crossval_hyperdrive_config
from himl_azure_v1.injob import run_info_from_environ

from himl_kernel.cli.main import main
from himl_kernel.plugins import build_host

CONDA = "name: job\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - pip\n  - pip: [numpy]\n"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HIML_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))  # the SDK's own files stay out of the real home
    (tmp_path / "environment.yml").write_text(CONDA)
    return tmp_path


def _dry_run(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code = main(["run", "--compute", "azureml-v1", "--cluster", "gpu-nc24", "--dry-run", *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("# AzureML SDK v1 ")
    document = yaml.safe_load(out)
    assert isinstance(document, dict)
    return document


def test_a_two_node_cross_validation_is_a_hyperdrive_run(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    request = _dry_run(capsys, "--model", "HelloWorld", "--num_nodes", "2", "--crossval_count", "3",
                       "--docker_shm_size", "16g", "--max_run_duration", "2h")  # fmt: skip
    config = request["run_configuration"]
    assert config["target"] == "gpu-nc24"
    assert config["command"] == ["python", "-m", "himl_kernel", "run", "--model", "HelloWorld", "--crossval_count", "3"]
    assert config["nodeCount"] == 2
    # a container gets MPI with one process per node: Lightning starts one process per GPU itself
    assert config["communicator"] == "IntelMpi"
    assert config["mpi"] == {"processCountPerNode": 1, "nodeCount": 2}
    assert config["docker"]["useDocker"] is True and config["docker"]["shmSize"] == "16g"
    assert config["maxRunDurationSeconds"] == 7200
    assert config["environmentVariables"] == {"HIML_WIRE_FORMAT": "1", "HIML_BACKEND": "azureml-v1"}
    environment = config["environment"]
    assert environment["name"].startswith("himl-v1-")
    assert environment["python"]["condaDependencies"]["dependencies"][:2] == ["python=3.11", "pip"]
    assert environment["docker"]["baseImage"] == "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04"
    assert request["source_directory"] == str(workdir)
    assert request["tags"]["himl.backend"] == "azureml-v1"
    assert request["tags"]["himl.command"] == "HelloWorld --crossval_count 3"
    hyperdrive = request["hyperdrive"]
    grid = {"name": "GRID", "parameter_space": {"crossval_index": ["choice", [[0, 1, 2]]]}}
    assert hyperdrive["generator_config"] == grid
    assert hyperdrive["primary_metric_config"] == {"name": "val/loss", "goal": "minimize"}
    assert hyperdrive["max_total_runs"] == 3
    assert hyperdrive["max_duration_minutes"] == 120


def test_a_script_on_several_processes_gets_a_pytorch_configuration(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "train.py").write_text("print('hello')\n")
    (workdir / "requirements.txt").write_text("numpy>=1.24\n")
    options = ["--compute", "azureml-v1", "--cluster", "cpu", "--num_nodes", "2", "--processes_per_node", "4"]
    pip = ["--pip-requirements", "requirements.txt"]
    code = main(["submit", "train.py", *options, *pip, "--dry-run", "--", "--n", "3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    config = yaml.safe_load(out)["run_configuration"]
    assert config["command"] == ["python", "train.py", "--n", "3"]
    assert config["communicator"] == "Nccl" or config["framework"] == "PyTorch"
    assert config["pytorch"]["processCount"] == 8 and config["pytorch"]["nodeCount"] == 2
    pip = config["environment"]["python"]["condaDependencies"]["dependencies"]
    assert {"pip": ["numpy>=1.24"]} in pip or any(isinstance(d, dict) and "numpy>=1.24" in d["pip"] for d in pip)
    assert "hyperdrive" not in yaml.safe_load(out)


def test_a_docker_image_alone_uses_the_images_python(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "environment.yml").unlink()
    config = _dry_run(capsys, "--model", "HelloWorld", "--docker-image", "myregistry.azurecr.io/train:3")[
        "run_configuration"
    ]
    assert config["environment"]["python"]["userManagedDependencies"] is True
    assert config["environment"]["docker"]["baseImage"] == "myregistry.azurecr.io/train:3"
    assert "mpi" in config and config["mpi"]["nodeCount"] == 1  # one node, one process: no distribution


def test_the_environment_name_follows_its_content(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = _dry_run(capsys, "--model", "HelloWorld")["run_configuration"]["environment"]["name"]
    again = _dry_run(capsys, "--model", "HelloWorld")["run_configuration"]["environment"]["name"]
    (workdir / "environment.yml").write_text(CONDA.replace("numpy", "scipy"))
    changed = _dry_run(capsys, "--model", "HelloWorld")["run_configuration"]["environment"]["name"]
    assert first == again and changed != first


def test_a_hyperparameter_sweep_keeps_its_sampling_and_metric() -> None:
    from himl_azure_v1.runconfig import V1Settings, build_hyperdrive, build_script_run, hyperdrive_settings

    from himl_kernel.job import Entry, Environment, JobSpec
    from himl_kernel.sweep import Sweep, Uniform

    spec = JobSpec(
        entry=Entry("script", "train.py"),
        environment=Environment(docker_image="img:1"),
        sweep=Sweep({"lr": Uniform(1e-4, 1e-1, log=True), "depth": [2, 3]}, sampling="random", max_trials=5,
                    primary_metric="val/auroc", goal="maximize", max_parallel=2),
    )  # fmt: skip
    settings = hyperdrive_settings(build_hyperdrive(spec, build_script_run(spec, V1Settings("gpu"))))
    assert settings["generator_config"]["name"] == "RANDOM"
    space = settings["generator_config"]["parameter_space"]
    assert space["depth"] == ["choice", [[2, 3]]]
    assert space["lr"][0] == "loguniform"
    assert space["lr"][1] == pytest.approx([-9.2103404, -2.3025851])
    assert settings["primary_metric_config"] == {"name": "val/auroc", "goal": "maximize"}
    assert settings["max_total_runs"] == 5 and settings["max_concurrent_runs"] == 2


def test_hi_mls_crossval_hyperdrive_config() -> None:
    config = create_crossval_hyperdrive_config(4)
    grid = {"name": "GRID", "parameter_space": {"crossval_index": ["choice", [[0, 1, 2, 3]]]}}
    assert config._generator_config == grid
    assert config._primary_metric_config == {"name": "val/loss", "goal": "minimize"}
    assert config._max_total_runs == 4
    named = create_crossval_hyperdrive_config(2, cross_val_index_arg_name="fold", metric_name="val/auroc")
    assert list(named._generator_config["parameter_space"]) == ["fold"]
    with pytest.raises(ValueError, match="num_splits"):
        create_crossval_hyperdrive_config(0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cluster", ""], "needs a compute cluster"),
        (["--cluster", "gpu", "--conda-file", "missing.yml"], "missing.yml"),
    ],
)
def test_bad_settings_are_one_line(
    workdir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code = main(["run", "--model", "HelloWorld", "--compute", "azureml-v1", *args, "--dry-run"])
    err = capsys.readouterr().err
    assert code != 0
    lines = [line for line in err.splitlines() if line.startswith("himl: error:")]
    assert len(lines) == 1 and message in lines[0], err


def test_no_environment_at_all_is_one_line(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "environment.yml").unlink()
    code = main(["run", "--model", "HelloWorld", "--compute", "azureml-v1", "--cluster", "gpu", "--dry-run"])
    err = capsys.readouterr().err
    assert code != 0 and "needs a software environment" in err and len(err.strip().splitlines()) == 1


def test_submitting_without_a_workspace_is_one_line_naming_both_ways_to_give_one(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--model", "HelloWorld", "--compute", "azureml-v1", "--cluster", "gpu"])
    err = capsys.readouterr().err
    assert code != 0
    (line,) = [line for line in err.splitlines() if line.startswith("himl: error:")]
    assert "config.json" in line and "HIML_SUBSCRIPTION_ID" in line


V1_JOB = {
    "AZUREML_RUN_ID": "HelloWorld_1700000000_abcd1234",
    "AZUREML_ARM_SUBSCRIPTION": "sub",
    "AZUREML_ARM_RESOURCEGROUP": "rg",
    "AZUREML_ARM_WORKSPACE_NAME": "ws",
    "AZUREML_ARM_PROJECT_NAME": "HelloWorld",
    "AZUREML_RUN_TOKEN": "token",
    "AZUREML_SERVICE_ENDPOINT": "https://westeurope.api.azureml.ms",
}


def test_a_v1_job_is_recognised_by_its_marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    info = run_info_from_environ({**V1_JOB, "HIML_BACKEND": "azureml-v1", "AZUREML_ROOT_RUN_ID": "HD_parent"})
    assert info is not None
    assert info.run_id == "HelloWorld_1700000000_abcd1234" and info.backend == "azureml-v1"
    assert info.parent_run_id == "HD_parent" and info.is_remote
    assert info.output_folder == tmp_path / "outputs" and info.output_folder.is_dir()
    assert info.logs_folder == tmp_path / "logs"


@pytest.mark.parametrize("marker", [None, "azureml", "amulet"])
def test_jobs_of_other_backends_are_not_claimed(marker: str | None) -> None:
    environ = dict(V1_JOB) if marker is None else {**V1_JOB, "HIML_BACKEND": marker}
    assert run_info_from_environ(environ) is None


def test_the_host_asks_v1_with_its_marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    host = build_host()
    info = host.detect_run({**V1_JOB, "HIML_BACKEND": "azureml-v1"})
    assert info is not None and info.backend == "azureml-v1"


def test_run_context_outside_azureml_is_an_offline_run(capsys: pytest.CaptureFixture[str]) -> None:
    import himl_azure_v1

    context = himl_azure_v1.RUN_CONTEXT
    assert type(context).__name__ == "_OfflineRun" and context.id.startswith("OfflineRun_")
    context.log("val/loss", 0.5)  # hi-ml scripts call this unchanged; offline it goes to the console
    assert himl_azure_v1.RUN_CONTEXT is context
