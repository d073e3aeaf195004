"""`himl run`: a plain container on the local backend, sweeps, dry runs, help."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from himl_kernel.cli.main import main
from himl_kernel.runstore import RunStore


def _only_run(store: RunStore, experiment: str = "PlainHelloWorld") -> str:
    runs = store.list_runs(experiment)
    assert len(runs) == 1
    return runs[0].run_id


def test_helloworld_trains_and_keeps_outputs_metrics_and_params(himl_home: Path) -> None:
    assert main(["run", "--model", "PlainHelloWorld", "--max_epochs", "4"]) == 0
    store = RunStore()
    run = store.get(_only_run(store))
    assert run.status == "FINISHED"
    assert run.tags["himl.backend"] == "local" and run.tags["himl.model"] == "PlainHelloWorld"
    assert run.params["max_epochs"] == "4"
    assert [step for step, _ in store.metric_history(run.run_id, "val/loss")] == [0, 1, 2, 3]
    outputs = store.folders(run)[0]
    model = json.loads((outputs / "model.json").read_text())
    assert abs(model["w"] - 2.0) < 0.3 and abs(model["b"] - 1.0) < 0.2
    assert run.metrics["test/loss"] == pytest.approx(model["test_loss"])
    assert (outputs / "dataset.csv").read_text().startswith("x,y\n")


def test_crossvalidation_runs_three_child_runs_under_a_parent(himl_home: Path) -> None:
    assert main(["run", "--model", "PlainHelloWorld", "--max_epochs", "2", "--crossval_count", "3"]) == 0
    store = RunStore()
    parents = [r for r in store.list_runs("PlainHelloWorld") if not r.parent_run_id]
    assert len(parents) == 1 and parents[0].status == "FINISHED"
    children = store.children(parents[0].run_id)
    assert sorted(c.params["crossval_index"] for c in children) == ["0", "1", "2"]
    assert all(c.status == "FINISHED" and "val/loss" in c.metrics for c in children)
    # each fold validates on different rows, so the fold losses differ
    assert len({c.metrics["val/loss"] for c in children}) == 3


def test_parallel_sweep_runs_trials_in_subprocesses(himl_home: Path) -> None:
    code = main(
        ["run", "--model", "PlainHelloWorld", "--max_epochs", "2", "--crossval_count", "2", "--max-parallel", "2"]
    )
    assert code == 0
    store = RunStore()
    parent = next(r for r in store.list_runs("PlainHelloWorld") if not r.parent_run_id)
    children = store.children(parent.run_id)
    assert len(children) == 2
    for child in children:
        logs = store.folders(child)[1]
        assert "PlainHelloWorld: w=" in (logs / "stdout.txt").read_text()
        assert child.status == "FINISHED"


FAILING_FOLD = """
from himl_kernel.hello import PlainHelloWorld


class FoldOneFails(PlainHelloWorld):
    def run(self, run_info):
        if self.crossval_index == 1:
            raise RuntimeError("fold 1 fails on purpose")
        super().run(run_info)
"""


def test_failing_trial_fails_the_sweep_but_keeps_the_others(
    himl_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a container (by its dotted path) whose second fold raises inside the job; the first must still finish
    modules = tmp_path / "user_code"
    modules.mkdir()
    (modules / "failing_fold.py").write_text(FAILING_FOLD, encoding="utf-8")
    monkeypatch.syspath_prepend(str(modules))
    monkeypatch.setenv("PYTHONPATH", str(modules))
    code = main(["run", "--model", "failing_fold.FoldOneFails", "--max_epochs", "1", "--crossval_count", "3"])
    assert code != 0
    store = RunStore()
    parent = next(r for r in store.list_runs("failing_fold.FoldOneFails") if not r.parent_run_id)
    assert parent.status == "FAILED"
    statuses = {c.params["crossval_index"]: c.status for c in store.children(parent.run_id)}
    assert statuses == {"0": "FINISHED", "1": "FAILED", "2": "FINISHED"}
    finished = [c for c in store.children(parent.run_id) if c.status == "FINISHED"]
    assert all("val/loss" in c.metrics for c in finished)


def test_dry_run_prints_what_the_backend_receives_and_runs_nothing(
    himl_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--model", "PlainHelloWorld", "--crossval_count", "2", "--dry-run", "--tag", "team=x"])
    assert code == 0
    document = yaml.safe_load(capsys.readouterr().out)
    assert document["backend"] == "local"
    assert document["job"]["entry"] == {
        "kind": "container",
        "target": "PlainHelloWorld",
        "args": ["--crossval_count", "2"],
    }
    assert document["job"]["tags"]["team"] == "x"
    assert [r["trial"] for r in document["runs"]] == [{"crossval_index": 0}, {"crossval_index": 1}]
    assert not (himl_home / "mlflow.db").exists()


def test_config_file_and_options(himl_home: Path, tmp_path: Path) -> None:
    config = tmp_path / "hello.yaml"
    config.write_text("max_epochs: 3\nlearning_rate: 0.1\n")
    assert main(["run", "--model", "PlainHelloWorld", "--config", str(config), "--max_epochs", "2"]) == 0
    store = RunStore()
    run = store.get(_only_run(store))
    assert (run.params["max_epochs"], run.params["learning_rate"]) == ("2", "0.1")


def test_model_help_lists_its_fields(himl_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--model", "PlainHelloWorld", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--max_epochs" in out and "passes over the training data" in out and "--compute" in out


def test_run_inside_a_job_runs_the_model_as_that_run(himl_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = RunStore()
    stored = store.create_run("outside", "job")
    outputs, logs = store.folders(stored)
    monkeypatch.setenv("HIML_BACKEND", "local")
    monkeypatch.setenv("HIML_RUN_ID", stored.run_id)
    monkeypatch.setenv("HIML_OUTPUT_FOLDER", str(outputs))
    monkeypatch.setenv("HIML_LOGS_FOLDER", str(logs))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.tracking_uri)
    assert main(["run", "--model", "PlainHelloWorld", "--max_epochs", "1"]) == 0
    assert (outputs / "model.json").is_file()
    assert "test/loss" in store.get(stored.run_id).metrics
    assert store.client.get_experiment_by_name("PlainHelloWorld") is None  # no second run was created
