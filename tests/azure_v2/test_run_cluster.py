"""``himl run --cluster NAME`` without ``--compute`` submits to AzureML, as hi-ml's runner does."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from himl_kernel.cli.main import main
from tests.conftest import error_lines

CONDA = "name: train\nchannels: [conda-forge]\ndependencies:\n  - python=3.10\n  - pip\n  - pip: [numpy]\n"


def test_cluster_alone_makes_himl_run_an_azureml_job(himl_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Path("environment.yml").write_text(CONDA, encoding="utf-8")
    code = main(["run", "--model", "HelloWorld", "--cluster", "gpu-nc24", "--max_epochs", "3", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    job = yaml.safe_load(out)
    assert job["type"] == "command" and job["compute"] == "azureml:gpu-nc24"
    assert "--model HelloWorld" in job["command"] and "--max_epochs 3" in job["command"]
    assert not himl_home.exists()  # a dry run: nothing in the local run store


def test_explicit_compute_still_wins_over_the_cluster_default(
    himl_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--model", "HelloWorld", "--cluster", "gpu-nc24", "--compute", "local", "--dry-run"])
    assert code == 2
    assert error_lines(capsys.readouterr().err) == [
        "himl: error: --cluster 'gpu-nc24': compute backend 'local' cannot honour it; "
        "drop it, or choose a backend that can with --compute"
    ]


def test_without_the_azureml_plugin_cluster_is_one_line_naming_the_plugin(
    himl_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HIML_DISABLE_PLUGINS", "azure_v2")
    code = main(["run", "--model", "HelloWorld", "--cluster", "gpu-nc24", "--max_epochs", "1"])
    lines = error_lines(capsys.readouterr().err)
    assert code != 0
    assert lines == [
        "himl: error: --cluster 'gpu-nc24' without --compute submits to AzureML, but no compute backend 'azureml' "
        "is installed: pip install himl-azure-v2 (`himl plugins` shows one that failed to load); or name the "
        "backend with --compute"
    ]
    assert not himl_home.exists()  # nothing was run or recorded


def test_without_cluster_himl_run_stays_local(himl_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--model", "HelloWorld", "--max_epochs", "1", "--dry-run"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["backend"] == "local"


def _instance_count(capsys: pytest.CaptureFixture[str], *args: str) -> int:
    Path("environment.yml").write_text(CONDA, encoding="utf-8")
    assert main(["run", "--model", "tests.lightning.himl_style.TwoNodes", "--cluster", "gpu", *args, "--dry-run"]) == 0
    count: int = yaml.safe_load(capsys.readouterr().out)["resources"]["instance_count"]
    return count


def test_num_nodes_set_in_a_containers_init_sizes_the_job_and_the_command_line_wins(
    himl_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _instance_count(capsys) == 2
    assert _instance_count(capsys, "--num_nodes", "1") == 1


def test_num_nodes_below_one_in_init_is_one_line(himl_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--model", "tests.lightning.himl_style.ZeroNodes", "--cluster", "gpu", "--dry-run"])
    assert code != 0
    assert error_lines(capsys.readouterr().err) == [
        "himl: error: ZeroNodes.num_nodes must be a whole number of machines, at least 1; got 0"
    ]
