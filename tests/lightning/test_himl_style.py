"""hi-ml's containers as their users wrote them: pytorch_lightning models, fields set in __init__, dotted names."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from himl_kernel.cli.main import main
from himl_kernel.runstore import StoredRun

from ..conftest import error_lines
from .conftest import Store, all_runs
from .himl_style import PREDICTIONS_FILE

MODEL = "tests.lightning.himl_style.HimlStyleRegression"
EXPERIMENT = "HimlStyleRegression"


def run_model(store: Store, model: str, *args: str) -> StoredRun:
    before = {r.run_id for r in all_runs(store, EXPERIMENT)}
    assert main(["run", "--model", model, "--experiment", EXPERIMENT, *args]) == 0
    new = [r for r in all_runs(store, EXPERIMENT) if r.run_id not in before]
    assert len(new) == 1
    return store.runs.get(new[0].run_id)


@pytest.fixture(scope="module")
def data_folder(store: Store) -> Path:
    folder = store.cwd / "line_data"  # the container's __init__ names it relative to where the job starts
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def trained(store: Store, data_folder: Path) -> StoredRun:
    return run_model(store, MODEL)


def test_pytorch_lightning_container_by_dotted_name_trains_tests_and_keeps_what_it_writes_to_cwd(
    store: Store, trained: StoredRun, data_folder: Path
) -> None:
    assert trained.status == "FINISHED"
    outputs = store.outputs(trained)
    # the model wrote ./test_predictions.csv: it is in the run's outputs, not where the job started
    predictions = (outputs / PREDICTIONS_FILE).read_text(encoding="utf-8").splitlines()
    assert predictions[0] == "prediction,target" and len(predictions) == 1 + 32
    assert not (store.cwd / PREDICTIONS_FILE).exists()
    assert Path.cwd() == store.cwd  # the working directory is restored after the run
    # what __init__ set is what ran: two epochs at l_rate 0.5, recovery checkpoints off
    assert len(store.runs.metric_history(trained.run_id, "val/loss")) == 2
    assert trained.params["max_epochs"] == "2" and trained.params["l_rate"] == "0.5"
    assert 0 < trained.metrics["test/loss"] < 0.1  # y = 3x - 1 varies by 0.75: the model learned it
    assert (outputs / "checkpoints" / "last.ckpt").is_file()
    assert not list((outputs / "checkpoints").glob("recovery-*"))
    # the relative dataset folder was made absolute before the run moved into its outputs folder
    config = yaml.safe_load((outputs / "config.yaml").read_text(encoding="utf-8"))
    assert config["local_datasets"] == [str(data_folder)]


def test_command_line_overrides_what_init_sets(store: Store, data_folder: Path) -> None:
    run = run_model(store, MODEL, "--max_epochs", "1", "--autosave_every_n_val_epochs", "1")
    assert len(store.runs.metric_history(run.run_id, "val/loss")) == 1
    assert run.params["max_epochs"] == "1"
    # the class default (1), set back over __init__'s 0, is honoured
    assert list((store.outputs(run) / "checkpoints").glob("recovery-*"))


def test_cross_validation_children_get_init_values_and_command_line_values_back(
    store: Store, data_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --max_epochs 100 is the class's default but not the container's (__init__ sets 2): the children need it
    capsys.readouterr()
    assert main(["run", "--model", MODEL, "--crossval_count", "2", "--max_epochs", "100", "--dry-run"]) == 0
    document = yaml.safe_load(capsys.readouterr().out)
    commands = [run["command"] for run in document["runs"]]
    assert len(commands) == 2
    for index, command in enumerate(commands):
        words = command.split()
        assert words.count("--max_epochs") == 1 and words[words.index("--max_epochs") + 1] == "100"
        assert words[words.index("--crossval_index") + 1] == str(index)
        assert "--l_rate" not in words  # what __init__ sets and nobody changed is not repeated


def test_relative_src_checkpoint_is_found_from_where_the_job_started(store: Store, trained: StoredRun) -> None:
    shutil.copy(store.outputs(trained) / "checkpoints" / "last.ckpt", store.cwd / "start.ckpt")
    run = run_model(store, MODEL, "--run_inference_only", "--src_checkpoint", "start.ckpt")
    assert run.status == "FINISHED"
    assert run.metrics["test/loss"] == pytest.approx(trained.metrics["test/loss"], rel=1e-5)


def test_model_and_data_of_the_two_lightning_packages_are_one_line(
    store: Store, data_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    code = main(["run", "--model", "tests.lightning.himl_style.MixedPackages", "--experiment", "mixed"])
    lines = error_lines(capsys.readouterr().err)
    assert code != 0
    assert len(lines) == 1
    assert "lightning.pytorch LightningDataModule" in lines[0] and "pytorch_lightning LightningModule" in lines[0]


def test_callback_of_the_other_lightning_package_is_one_line(
    store: Store, data_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    code = main(["run", "--model", "tests.lightning.himl_style.ForeignCallback", "--experiment", "mixed"])
    lines = error_lines(capsys.readouterr().err)
    assert code != 0
    assert len(lines) == 1 and "get_callbacks()'s Callback is a lightning.pytorch Callback" in lines[0]


def test_init_that_needs_arguments_is_one_line(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code = main(["run", "--model", "tests.lightning.himl_style.NeedsArguments", "--dry-run"])
    lines = error_lines(capsys.readouterr().err)
    assert code != 0
    assert len(lines) == 1 and "callable with no arguments" in lines[0] and "NeedsArguments" in lines[0]


def test_dotted_name_from_the_command_line_in_a_fresh_process(
    store: Store, data_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = str(Path(__file__).resolve().parents[2])  # where the package `tests` is importable from
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])))
    result = store.himl("run", "--model", MODEL, "--experiment", EXPERIMENT, "--max_epochs", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    run = store.newest(EXPERIMENT)
    assert run.status == "FINISHED" and (store.outputs(run) / PREDICTIONS_FILE).is_file()
