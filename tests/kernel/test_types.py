"""Core types: Sweep, DatasetConfig, Snapshot, JobSpec, RunInfo."""

from __future__ import annotations

from pathlib import Path

import pytest

from himl_kernel.datasets import DatasetConfig
from himl_kernel.errors import HimlError
from himl_kernel.job import Compute, Entry, Environment, JobSpec
from himl_kernel.runinfo import RunInfo
from himl_kernel.snapshot import Snapshot
from himl_kernel.sweep import Sweep, Uniform, trial_arguments


def test_grid_sweep_runs_every_combination_in_order() -> None:
    sweep = Sweep(parameters={"lr": [0.1, 0.01], "depth": [2, 3, 4]})
    trials = sweep.trials()
    assert len(trials) == 6
    assert trials[0] == {"lr": 0.1, "depth": 2}
    assert trials[-1] == {"lr": 0.01, "depth": 4}


def test_grid_sweep_honours_max_trials() -> None:
    assert len(Sweep(parameters={"a": [1, 2, 3]}, max_trials=2).trials()) == 2


def test_random_sweep_is_reproducible_and_in_range() -> None:
    sweep = Sweep(
        parameters={"lr": Uniform(1e-4, 1e-1, log=True), "opt": ["adam", "sgd"]},
        sampling="random",
        max_trials=20,
        seed=3,
    )
    first, second = sweep.trials(), sweep.trials()
    assert first == second
    assert all(1e-4 <= t["lr"] <= 1e-1 and t["opt"] in ("adam", "sgd") for t in first)
    assert len({t["lr"] for t in first}) == 20


def test_crossval_and_seeds_are_sweeps() -> None:
    assert Sweep.crossval(3).trials() == [{"crossval_index": 0}, {"crossval_index": 1}, {"crossval_index": 2}]
    assert [t["random_seed"] for t in Sweep.seeds(3, first=10).trials()] == [10, 11, 12]


def test_trial_arguments_format_values_for_the_command_line() -> None:
    assert trial_arguments({"a": 1, "b": True, "c": 0.5, "d": [1, 2]}) == [
        "--a", "1", "--b", "true", "--c", "0.5", "--d", "[1, 2]",
    ]  # fmt: skip
    assert trial_arguments({"offset": -2, "name": "-x", "none": None}) == ["--offset=-2", "--name=-x", "--none", "null"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"parameters": {}}, "at least one parameter"),
        ({"parameters": {"a": []}}, "non-empty list"),
        ({"parameters": {"a": "abc"}}, "non-empty list"),
        ({"parameters": {"a": Uniform(0, 1)}}, "a grid needs a list"),
        ({"parameters": {"a": [1]}, "sampling": "random"}, "needs max_trials"),
        ({"parameters": {"a": [1]}, "goal": "up"}, "minimize"),
        ({"parameters": {"a": [1]}, "max_parallel": 0}, "max_parallel"),
    ],
)
def test_bad_sweeps_are_one_line_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(HimlError, match=message) as info:
        Sweep(**kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_crossval_needs_two_folds() -> None:
    with pytest.raises(HimlError, match="at least 2 folds"):
        Sweep.crossval(1)


def test_dataset_config_from_hi_ml_style_values(tmp_path: Path) -> None:
    by_name = DatasetConfig.from_value("panda", default_datastore="store")
    assert (by_name.name, by_name.datastore) == ("panda", "store")
    by_path = DatasetConfig.from_value(tmp_path)
    assert by_path.local_folder == tmp_path
    by_dict = DatasetConfig.from_value({"name": "x", "version": 3, "use_mounting": True})
    assert (by_dict.version, by_dict.use_mounting) == (3, True)
    assert by_dict.to_dict()["name"] == "x"


def test_dataset_config_rejects_unknown_fields_and_empty_names() -> None:
    with pytest.raises(HimlError, match=r"\['colour'\] are not known"):
        DatasetConfig.from_value({"name": "x", "colour": "red"})
    with pytest.raises(HimlError, match="must not be empty"):
        DatasetConfig.from_value("  ")
    with pytest.raises(HimlError, match="needs a name, a local_folder"):
        DatasetConfig()


def _tree(root: Path, files: list[str]) -> None:
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)


def test_snapshot_prefers_amlignore_over_gitignore(tmp_path: Path) -> None:
    _tree(tmp_path, ["train.py", "data/big.bin", "logs/x.txt", ".git/HEAD", "pkg/mod.py"])
    (tmp_path / ".gitignore").write_text("logs/\n")
    (tmp_path / ".amlignore").write_text("data/\n*.txt\n")
    snapshot = Snapshot(tmp_path)
    assert snapshot.ignore_file == tmp_path / ".amlignore"
    files = {p.as_posix() for p in snapshot.files()}
    assert files == {".amlignore", ".gitignore", "train.py", "pkg/mod.py"}


def test_snapshot_falls_back_to_gitignore(tmp_path: Path) -> None:
    _tree(tmp_path, ["train.py", "logs/x.txt", "outputs/model.bin"])
    (tmp_path / ".gitignore").write_text("logs/\noutputs/\n")
    snapshot = Snapshot(tmp_path)
    assert {p.as_posix() for p in snapshot.files()} == {".gitignore", "train.py"}
    count, size = snapshot.size()
    assert (count, size) == (2, len("logs/\noutputs/\n") + len("train.py"))


def test_snapshot_root_must_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(HimlError, match="is not a folder"):
        Snapshot(tmp_path / "nope")


def test_entry_commands() -> None:
    assert Entry("script", "train.py", ["--a", "1"]).command("py") == ["py", "train.py", "--a", "1"]
    assert Entry("module", "pkg.train").command("py") == ["py", "-m", "pkg.train"]
    assert Entry("container", "HelloWorld", ["--x", "2"]).command("py")[1:] == [
        "-m", "himl_kernel", "run", "--model", "HelloWorld", "--x", "2",
    ]  # fmt: skip
    with pytest.raises(HimlError):
        Entry("notebook", "x.ipynb")  # type: ignore[arg-type]


def test_jobspec_to_dict_holds_everything_a_backend_receives(tmp_path: Path) -> None:
    conda = tmp_path / "env.yml"
    conda.write_text("name: x\n")
    job = JobSpec(
        entry=Entry("script", "train.py", ["--lr", "0.1"]),
        snapshot=Snapshot(tmp_path),
        environment=Environment(conda_file=conda, docker_image="img:1"),
        compute=Compute(backend="local", target="cpu", num_nodes=2, processes_per_node=4),
        input_datasets=[DatasetConfig(name="in", use_mounting=True)],
        output_datasets=[DatasetConfig(name="out")],
        env_vars={"A": 1},  # type: ignore[dict-item]
        tags={"t": "v"},
        experiment="exp",
        sweep=Sweep.crossval(3),
        max_run_duration_s=60,
    )
    data = job.to_dict()
    assert data["wire_format"] == 1
    assert data["entry"] == {"kind": "script", "target": "train.py", "args": ["--lr", "0.1"]}
    assert data["compute"]["num_nodes"] == 2 and data["compute"]["processes_per_node"] == 4
    assert data["environment"]["conda_file"] == str(conda.resolve())
    assert data["input_datasets"][0]["use_mounting"] is True
    assert data["env_vars"] == {"A": "1"}
    assert data["sweep"]["parameters"] == {"crossval_index": [0, 1, 2]}
    assert data["max_run_duration_s"] == 60


def test_jobspec_rejects_bad_values(tmp_path: Path) -> None:
    with pytest.raises(HimlError, match="num_nodes"):
        Compute(num_nodes=0)
    with pytest.raises(HimlError, match="conda_file"):
        Environment(conda_file=tmp_path / "missing.yml")
    with pytest.raises(HimlError, match="max_run_duration_s"):
        JobSpec(entry=Entry("script", "x.py"), snapshot=Snapshot(tmp_path), max_run_duration_s=0)


def test_runinfo_round_trips_through_the_environment(tmp_path: Path) -> None:
    info = RunInfo(
        run_id="abc",
        backend="local",
        output_folder=tmp_path / "outputs",
        logs_folder=tmp_path / "logs",
        input_datasets=[tmp_path / "in", None],
        output_datasets=[tmp_path / "out"],
        parent_run_id="parent",
        tracking_uri="sqlite:///x.db",
    )
    assert RunInfo.from_environ(info.to_environ()) == info
    assert RunInfo.from_environ({}) is None
    assert info.to_environ()["HIML_WIRE_FORMAT"] == "1" and info.to_dict()["wire_format"] == 1


def test_a_job_refuses_a_wire_format_it_does_not_know(tmp_path: Path) -> None:
    info = RunInfo(run_id="abc", backend="local", output_folder=tmp_path / "o", logs_folder=tmp_path / "l")
    environ = info.to_environ()
    unversioned = {k: v for k, v in environ.items() if k != "HIML_WIRE_FORMAT"}
    assert RunInfo.from_environ(unversioned) == info  # before the number existed: format 1
    with pytest.raises(HimlError) as future:
        RunInfo.from_environ({**environ, "HIML_WIRE_FORMAT": "2"})
    message = str(future.value)
    assert "\n" not in message
    assert message.startswith("this job was submitted in himl wire format 2 (HIML_WIRE_FORMAT), but this himl (")
    assert message.endswith("reads only 1: run the job with the himl version that submitted it")
    with pytest.raises(HimlError, match=r"HIML_WIRE_FORMAT='two' is not a wire format number; this himl reads 1"):
        RunInfo.from_environ({**environ, "HIML_WIRE_FORMAT": "two"})


def test_himl_run_inside_a_job_of_an_unknown_wire_format_fails_in_one_line(tmp_path: Path) -> None:
    from ..conftest import error_lines, run_himl

    env = {
        "HIML_RUN_ID": "abc",
        "HIML_BACKEND": "local",
        "HIML_OUTPUT_FOLDER": str(tmp_path / "o"),
        "HIML_LOGS_FOLDER": str(tmp_path / "l"),
        "HIML_WIRE_FORMAT": "7",
        "HIML_HOME": str(tmp_path / "home"),
    }
    result = run_himl("run", "--model", "PlainHelloWorld", "--max_epochs", "1", cwd=tmp_path, env=env)
    assert result.returncode != 0
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "himl wire format 7 (HIML_WIRE_FORMAT)" in lines[0], result.stderr
    assert not (tmp_path / "o").exists()  # nothing ran
