"""`himl runs`: list, show, download and aggregate the runs of a real cross-validation."""

from __future__ import annotations

import csv
import io
import json
import os
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from himl_kernel.cli.main import main
from himl_kernel.cli.runs_cmd import Aggregate, aggregate_children, column_labels, render_aggregate
from himl_kernel.errors import HimlError
from himl_kernel.runstore import RunStore, StoredRun

LOSSES = ("train/loss", "val/loss", "test/loss")


@dataclass
class CrossValidation:
    home: Path
    parent_id: str
    children: list[StoredRun]  # in fold order


@pytest.fixture(scope="module")
def crossval(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrossValidation]:
    """One 3-fold PlainHelloWorld cross-validation in a private run store, shared by the module's tests."""
    home = tmp_path_factory.mktemp("himl_home")
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(("HIML_", "MLFLOW_")):
                mp.delenv(name)
        mp.setenv("HIML_HOME", str(home))
        mp.setenv("HIML_PLUGIN_AUTOLOAD", "0")
        mp.chdir(home)
        assert main(["run", "--model", "PlainHelloWorld", "--max_epochs", "2", "--crossval_count", "3"]) == 0
        store = RunStore()
        parent = next(r for r in store.list_runs("PlainHelloWorld") if not r.parent_run_id)
        children = sorted(store.children(parent.run_id), key=lambda r: int(r.params["crossval_index"]))
        yield CrossValidation(home, parent.run_id, children)


@pytest.fixture
def store(crossval: CrossValidation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunStore:
    """The cross-validation's run store, with the current folder in this test's tmp_path."""
    monkeypatch.setenv("HIML_HOME", str(crossval.home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    return RunStore()


def _himl(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# -- list ---------------------------------------------------------------------------


def test_list_shows_every_run_with_short_parent_and_backend(
    crossval: CrossValidation, store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _himl(capsys, "runs", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["RUN", "ID", "EXPERIMENT", "NAME", "STATUS", "STARTED", "PARENT", "BACKEND"]
    for child in crossval.children:
        line = next(line for line in lines if line.startswith(child.run_id))
        assert crossval.parent_id[:8] in line and crossval.parent_id not in line
        assert line.split()[-1] == "local" and "FINISHED" in line
    parent_line = next(line for line in lines if line.startswith(crossval.parent_id))
    assert "PlainHelloWorld" in parent_line


def test_list_json_filters_by_experiment_and_limits(
    crossval: CrossValidation, store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _himl(capsys, "runs", "list", "--experiment", "PlainHelloWorld", "--limit", "2", "--json")
    assert code == 0
    runs = json.loads(out)
    assert len(runs) == 2
    everything = {c.run_id for c in crossval.children} | {crossval.parent_id}
    assert {r["run_id"] for r in runs} <= everything
    assert all(r["experiment"] == "PlainHelloWorld" and r["backend"] == "local" for r in runs)


def test_list_of_an_unknown_experiment_names_the_known_ones(
    store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _himl(capsys, "runs", "list", "--experiment", "HelloWorl")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [err.strip()]
    assert "unknown experiment 'HelloWorl'" in err and "'PlainHelloWorld'" in err


# -- show ---------------------------------------------------------------------------


def test_show_lists_params_metrics_tags_and_files_of_a_fold(
    crossval: CrossValidation, store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    child = crossval.children[1]
    code, out, _ = _himl(capsys, "runs", "show", child.run_id)
    assert code == 0
    assert f"parent      {crossval.parent_id}" in out
    assert "children    0" in out
    assert any(line.split() == ["crossval_index", "1"] for line in out.splitlines())
    assert any(line.split()[:1] == ["val/loss"] for line in out.splitlines())
    assert "himl.backend" in out and "mlflow." not in out
    model_line = next(line for line in out.splitlines() if "outputs/model.json" in line)
    size = (store.folders(child)[0] / "model.json").stat().st_size
    assert model_line.split()[-2:] == [str(size), "B"]


def test_show_json_counts_the_children_of_the_parent_and_sizes_files(
    crossval: CrossValidation, store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _himl(capsys, "runs", "show", crossval.parent_id, "--json")
    assert code == 0
    parent = json.loads(out)
    assert sorted(parent["children"]) == sorted(c.run_id for c in crossval.children)
    assert parent["parent_run_id"] == "" and "crossval_index" in parent["tags"]["himl.sweep"]

    child = crossval.children[0]
    _, out, _ = _himl(capsys, "runs", "show", child.run_id, "--json")
    shown = json.loads(out)
    outputs = store.folders(child)[0]
    assert {f["path"]: f["size"] for f in shown["files"]} == {
        "outputs/config.yaml": (outputs / "config.yaml").stat().st_size,  # the run's resolved configuration
        "outputs/dataset.csv": (outputs / "dataset.csv").stat().st_size,
        "outputs/model.json": (outputs / "model.json").stat().st_size,
    }
    assert shown["metrics"] == child.metrics
    assert not any(key.startswith("mlflow.") for key in shown["tags"])


# -- download -----------------------------------------------------------------------


def test_download_copies_every_artifact_byte_for_byte_into_run_id_folder(
    crossval: CrossValidation, store: RunStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    child = crossval.children[2]
    code, out, _ = _himl(capsys, "runs", "download", child.run_id)
    assert code == 0
    dest = tmp_path / child.run_id
    assert str(dest) in out
    original = store.artifact(child.run_id, "outputs/model.json")
    assert (dest / "outputs" / "model.json").read_bytes() == original.read_bytes()
    assert (dest / "outputs" / "dataset.csv").read_bytes() == (original.parent / "dataset.csv").read_bytes()


def test_download_one_folder_into_a_chosen_destination(
    crossval: CrossValidation, store: RunStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    child = crossval.children[0]
    code, _, _ = _himl(capsys, "runs", "download", child.run_id, "--path", "outputs", "--dest", "copy")
    assert code == 0
    copied = sorted(p.relative_to(tmp_path / "copy").as_posix() for p in (tmp_path / "copy").rglob("*"))
    assert copied == ["outputs", "outputs/config.yaml", "outputs/dataset.csv", "outputs/model.json"]


def test_download_of_a_missing_artifact_is_a_one_line_error(
    crossval: CrossValidation, store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _himl(capsys, "runs", "download", crossval.children[0].run_id, "--path", "outputs/nope.ckpt")
    assert code == 2
    assert err.startswith("himl: error: ") and err.count("\n") == 1
    assert "outputs/nope.ckpt" in err


# -- aggregate ----------------------------------------------------------------------


def _csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_aggregate_csv_has_a_column_per_fold_then_mean_and_std(
    crossval: CrossValidation, store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _himl(capsys, "runs", "aggregate", crossval.parent_id)
    assert code == 0
    header, *rows = _csv_rows(out)
    assert header == ["metric", "crossval_index=0", "crossval_index=1", "crossval_index=2", "mean", "std"]
    by_metric = {row[0]: row[1:] for row in rows}
    assert set(by_metric) == set(LOSSES)
    for metric in LOSSES:
        expected = [store.get(child.run_id).metrics[metric] for child in crossval.children]
        *folds, mean, std = (float(cell) for cell in by_metric[metric])
        assert folds == expected
        assert mean == pytest.approx(statistics.fmean(expected))
        assert std == pytest.approx(statistics.stdev(expected))  # the sample standard deviation


def test_aggregate_writes_json_and_table_to_a_file(
    crossval: CrossValidation, store: RunStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _himl(capsys, "runs", "aggregate", crossval.parent_id, "--format", "json", "--output", "agg.json")
    assert code == 0 and "agg.json" in out
    document = json.loads((tmp_path / "agg.json").read_text())
    assert [r["run_id"] for r in document["runs"]] == [c.run_id for c in crossval.children]
    val = next(m for m in document["metrics"] if m["metric"] == "val/loss")
    assert val["values"]["crossval_index=1"] == crossval.children[1].metrics["val/loss"]

    code, out, _ = _himl(capsys, "runs", "aggregate", crossval.parent_id, "--format", "table")
    assert code == 0
    header = out.splitlines()[0].split()
    assert header == ["metric", "crossval_index=0", "crossval_index=1", "crossval_index=2", "mean", "std"]
    assert "sample std" in out


def test_aggregate_of_a_run_without_children_says_what_it_takes(
    crossval: CrossValidation, store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    child = crossval.children[0].run_id
    code, out, err = _himl(capsys, "runs", "aggregate", child)
    assert code == 2 and out == ""
    assert err == (
        f"himl: error: run {child} has no child runs; aggregate takes the parent of a sweep or cross-validation\n"
    )


@pytest.mark.parametrize(
    "args",
    [["show"], ["show", "--json"], ["download"], ["aggregate"]],
    ids=["show", "show-json", "download", "aggregate"],
)
def test_an_unknown_run_id_is_a_one_line_error_with_exit_2(
    store: RunStore, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, out, err = _himl(capsys, "runs", args[0], "0123456789abcdef", *args[1:])
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert err.startswith("himl: error: unknown run id '0123456789abcdef' in the run store sqlite:")
    assert not (tmp_path / "0123456789abcdef").exists()


def test_runs_without_a_subcommand_is_a_usage_error(store: RunStore, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _himl(capsys, "runs")
    assert code == 2 and err.startswith("himl: error: himl runs: ") and err.count("\n") == 1


# -- aggregation rules, without a store ---------------------------------------------


def _run(run_id: str, name: str = "", params: dict[str, str] | None = None, **metrics: float) -> StoredRun:
    return StoredRun(
        run_id=run_id, experiment="e", name=name, status="FINISHED", parent_run_id="p", artifact_uri="",
        start_time=0, end_time=0, params=params or {}, metrics=metrics, tags={},
    )  # fmt: skip


def test_labels_fall_back_to_varying_params_then_to_run_names() -> None:
    parent = _run("p")
    varying = [_run("a" * 32, params={"lr": "0.1", "seed": "1"}), _run("b" * 32, params={"lr": "0.2", "seed": "1"})]
    assert column_labels(parent, varying) == ["lr=0.1", "lr=0.2"]
    unnamed = [_run("a" * 32, name="first"), _run("b" * 32, name="second")]
    assert column_labels(parent, unnamed) == ["first", "second"]
    twins = [_run("a" * 32, name="same"), _run("b" * 32, name="same")]
    assert column_labels(parent, twins) == ["same (aaaaaaaa)", "same (bbbbbbbb)"]


class _TwoChildStore:
    """Just the two lookups aggregation makes, for a sweep where one child lacks a metric."""

    def __init__(self) -> None:
        self.children_runs = [
            _run("c1", name="one", params={"seed": "1"}, loss=1.0, auc=0.5),
            _run("c2", name="two", params={"seed": "2"}, loss=3.0),
        ]

    def get(self, run_id: str) -> StoredRun:
        if run_id != "p":
            raise HimlError(f"unknown run id {run_id!r}")
        return _run("p")

    def children(self, run_id: str) -> list[StoredRun]:
        return self.children_runs


def test_a_metric_missing_in_one_child_leaves_an_empty_cell_and_no_std() -> None:
    result = aggregate_children(_TwoChildStore(), "p")  # type: ignore[arg-type]
    assert isinstance(result, Aggregate)
    header, *rows = _csv_rows(render_aggregate(result, "csv"))
    assert header == ["metric", "seed=1", "seed=2", "mean", "std"]
    assert rows == [["auc", "0.5", "", "0.5", ""], ["loss", "1.0", "3.0", "2.0", str(statistics.stdev([1.0, 3.0]))]]


# -- a reader that stops early --------------------------------------------------------


@pytest.mark.slow
def test_output_into_a_pipe_closed_early_ends_quietly(tmp_path: Path) -> None:
    import subprocess

    from ..conftest import HIML, JOB_VARIABLES

    home = tmp_path / "home"
    store = RunStore(home=home)
    # More output than a pipe holds (64 KiB), so that himl is still writing when `head` goes away: one long
    # name widens every row of the list, many long params lengthen the show.
    runs = [store.create_run("many", f"run {index:02d}") for index in range(30)]
    store.set_tags(runs[0].run_id, {"mlflow.runName": "long " + "x" * 4000})
    store.log_params(runs[0].run_id, {f"param_{index:04d}": "y" * 200 for index in range(400)})
    env = {k: v for k, v in os.environ.items() if k not in JOB_VARIABLES}
    env.update({"HIML_HOME": str(home), "HIML_PLUGIN_AUTOLOAD": "0"})
    for args, first_words in (
        (["list", "--limit", "30"], ["RUN", "ID"]),
        (["show", runs[0].run_id], ["run", runs[0].run_id]),
    ):
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", f'"$0" runs {" ".join(args)} | head -1', HIML],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.stderr == ""  # no BrokenPipeError, no "Exception ignored" at exit
        assert len(done.stdout.splitlines()) == 1 and done.stdout.split()[:2] == first_words
        assert done.returncode == 141  # ended by a closed pipe, as `yes | head -1` is
