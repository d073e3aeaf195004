"""Scripts as runs: `himl submit`, `submit_if_needed`, and the plain PyTorch example."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from himl_kernel import hookimpl
from himl_kernel.datasets import DatasetConfig
from himl_kernel.errors import HimlError
from himl_kernel.plugins import build_host
from himl_kernel.runstore import RunStore
from himl_kernel.submit import pop_backend_flags, submit_if_needed

from ..conftest import REPO, error_lines, run_himl


def _env(home: Path) -> dict[str, str]:
    return {"HIML_HOME": str(home), "HIML_CACHE": str(home.parent / "cache")}


def test_himl_submit_runs_a_script_that_shows_in_runs_list_and_downloads(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = run_himl("submit", "examples/hello.py", "--", "--n", "10", cwd=REPO, env=_env(home))
    assert done.returncode == 0, done.stderr
    assert "sum of squares below 10 is 285" in done.stdout

    store = RunStore(home=home)
    (run,) = store.list_runs("hello")
    assert run.status == "FINISHED" and run.metrics["sum"] == 285

    listed = run_himl("runs", "list", cwd=tmp_path, env=_env(home))
    assert listed.returncode == 0 and run.run_id in listed.stdout

    dest = tmp_path / "downloaded"
    fetched = run_himl("runs", "download", run.run_id, "--dest", str(dest), cwd=tmp_path, env=_env(home))
    assert fetched.returncode == 0, fetched.stderr
    squares = list(dest.rglob("squares.csv"))
    assert len(squares) == 1
    assert squares[0].read_text().splitlines()[-1] == "9,81"
    assert "sum of squares below 10 is 285" in (dest / "logs" / "stdout.txt").read_text()


def test_script_run_plainly_records_a_local_run_in_process(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("HIML_", "MLFLOW_"))}, **_env(home)}
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "hello.py"), "--n", "4"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (run,) = RunStore(home=home).list_runs("hello")
    assert run.status == "FINISHED" and run.metrics["sum"] == 14


def test_himl_compute_flag_is_removed_before_the_script_parses(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("HIML_", "MLFLOW_"))}, **_env(home)}
    done = subprocess.run(
        [sys.executable, "examples/hello.py", "--n", "3", "--himl-compute", "local"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (run,) = RunStore(home=home).list_runs("hello")
    assert run.tags["himl.command"].endswith("examples/hello.py --n 3")
    assert run.status == "FINISHED"


def test_pop_backend_flags_understands_both_spellings_and_backend_flags() -> None:
    host = build_host(autoload=False)
    argv = ["s.py", "--a", "1", "--himl-compute", "local", "--b"]
    assert pop_backend_flags(argv, host) == "local" and argv == ["s.py", "--a", "1", "--b"]
    argv = ["s.py", "--himl-compute=local"]
    assert pop_backend_flags(argv, host) == "local" and argv == ["s.py"]
    assert pop_backend_flags(["s.py", "--x"], host) is None
    with pytest.raises(HimlError, match=r"unknown compute backend 'nowhere'.*known: local"):
        pop_backend_flags(["s.py", "--himl-compute", "nowhere"], host)


def test_backend_flag_registered_by_a_plugin_selects_it() -> None:
    from himl_kernel import hookimpl

    class FlagPlugin:
        @hookimpl
        def himl_register_compute_backends(self, registry):  # type: ignore[no-untyped-def]
            registry.add("elsewhere", object(), "a test backend", script_flag="--elsewhere")

    host = build_host(autoload=False, extra_plugins={"flag": FlagPlugin()})
    argv = ["s.py", "--elsewhere", "--n", "2"]
    assert pop_backend_flags(argv, host) == "elsewhere" and argv == ["s.py", "--n", "2"]


def test_submit_if_needed_inside_a_job_returns_that_run(himl_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = himl_home.parent / "data"
    data.mkdir()
    monkeypatch.setenv("HIML_BACKEND", "local")
    monkeypatch.setenv("HIML_RUN_ID", "the-job")
    monkeypatch.setenv("HIML_OUTPUT_FOLDER", str(himl_home / "o"))
    argv = ["script.py", "--himl-compute", "local", "--n", "1"]
    info = submit_if_needed(input_datasets=[DatasetConfig(name="d", local_folder=data)], argv=argv)
    assert info.run_id == "the-job" and info.input_datasets == [data.resolve()]
    assert argv == ["script.py", "--n", "1"]


def test_missing_dataset_folder_fails_before_any_run_is_created(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = run_himl(
        "submit", "examples/hello.py", "--input-dataset", str(tmp_path / "missing"), "--", "--n", "1",
        cwd=REPO, env=_env(home),
    )  # fmt: skip
    assert done.returncode == 2
    (line,) = error_lines(done.stderr)
    assert "local_folder" in line and "does not exist" in line and "missing" in line
    assert not (home / "mlflow.db").exists()


def test_plain_pytorch_loop_takes_dataset_checkpoint_and_logging_from_the_kernel(tmp_path: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    script = "examples/plain_pytorch.py"
    first = run_himl(
        "submit", script, "--", "--data", str(data), "--make-data", "--epochs", "3", cwd=REPO, env=_env(home)
    )
    assert first.returncode == 0, first.stderr + first.stdout
    store = RunStore(home=home)
    (run1,) = store.list_runs("plain_pytorch")
    history1 = store.metric_history(run1.run_id, "train/loss")
    assert [step for step, _ in history1] == [0, 1, 2]
    assert history1[-1][1] < history1[0][1]
    assert store.artifact(run1.run_id, "outputs/checkpoints/last.pt").is_file()

    reference = f"{run1.run_id}:checkpoints/last.pt"
    second = run_himl(
        "submit", script, "--", "--data", str(data), "--epochs", "2", "--checkpoint", reference,
        cwd=REPO, env=_env(home),
    )  # fmt: skip
    assert second.returncode == 0, second.stderr + second.stdout
    assert f"resumed from {run1.run_id}:checkpoints/last.pt at epoch 3" in second.stdout
    run2 = next(r for r in store.list_runs("plain_pytorch") if r.run_id != run1.run_id)
    history2 = store.metric_history(run2.run_id, "train/loss")
    assert [step for step, _ in history2] == [3, 4]
    assert history2[0][1] < history1[0][1]  # it started from the trained weights

    bad = run_himl(
        "submit", script, "--", "--data", str(data), "--checkpoint", "0123abcd:checkpoints/last.pt",
        cwd=REPO, env=_env(home),
    )  # fmt: skip
    assert bad.returncode != 0
    assert "unknown run id '0123abcd'" in bad.stdout + bad.stderr


def test_submit_if_needed_keywords_and_the_job_options_cannot_drift() -> None:
    """Every keyword is a job option or script-only; every job option is a keyword or command-line-only."""
    import inspect

    from himl_kernel.argparsing import HimlArgumentParser
    from himl_kernel.cli.job_options import add_job_options
    from himl_kernel.submit import (
        COMMAND_LINE_ONLY_OPTIONS,
        JOB_OPTION_OF_KEYWORD,
        SCRIPT_ONLY_KEYWORDS,
        submit_if_needed,
    )
    from himl_kernel.testing import fresh_host

    keywords = set(inspect.signature(submit_if_needed).parameters)
    assert keywords == set(JOB_OPTION_OF_KEYWORD) | set(SCRIPT_ONLY_KEYWORDS)
    assert not set(JOB_OPTION_OF_KEYWORD) & set(SCRIPT_ONLY_KEYWORDS)
    host = fresh_host()
    parser = HimlArgumentParser(prog="himl submit", add_help=False)
    add_job_options(parser, host, "submit")
    plugins = set(host.option_owners)  # a plugin's options (the local backend's --no-resume) are its own
    destinations = {a.dest for a in parser._actions if not plugins & set(a.option_strings)}
    assert destinations == set(JOB_OPTION_OF_KEYWORD.values()) | set(COMMAND_LINE_ONLY_OPTIONS)
    documented = inspect.getdoc(submit_if_needed) or ""
    assert all(f"{keyword}:" in documented for keyword in keywords), "a keyword lacks its line under Args"


def test_submit_if_needed_builds_the_job_the_job_options_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The keywords land where the matching command-line options put them in the JobSpec."""
    from himl_kernel.job import JobSpec, Submission
    from himl_kernel.submit import submit_if_needed
    from himl_kernel.testing import fresh_host

    seen: list[JobSpec] = []

    class Recorder:
        def submit(self, job: JobSpec, host: object) -> Submission:
            seen.append(job)
            return Submission("recorder", "run-1", status="FINISHED")

        def render(self, job: JobSpec, host: object) -> str:
            return ""

    class RecorderPlugin:
        @hookimpl
        def himl_register_compute_backends(self, registry) -> None:  # type: ignore[no-untyped-def]
            registry.add("recorder", Recorder, "records the job")

    script = tmp_path / "train.py"
    script.write_text("print('hi')\n", encoding="utf-8")
    conda = tmp_path / "env.yml"
    conda.write_text("name: x\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    host = fresh_host(RecorderPlugin(), names=["recorder"])
    with pytest.raises(SystemExit) as exit_info:
        submit_if_needed(
            compute="recorder", entry_script=script, conda_environment_file=conda, docker_image="img:1",
            docker_shm_size="64g", environment_variables={"A": "1=2"}, compute_target="gpu-nc24", num_nodes=2,
            processes_per_node=4, tags={"team": "x"}, experiment="exp", display_name="first",
            max_run_duration_s=5400, wait_for_completion=False, host=host, argv=[str(script), "--epochs", "3"],
        )  # fmt: skip
    assert exit_info.value.code == 0
    (job,) = seen
    assert job.entry.target == "train.py" and job.entry.args == ["--epochs", "3"]
    assert (job.compute.backend, job.compute.target, job.compute.num_nodes, job.compute.processes_per_node) == (
        "recorder", "gpu-nc24", 2, 4,
    )  # fmt: skip
    assert job.environment.conda_file == conda.resolve() and job.environment.docker_image == "img:1"
    assert job.environment.shm_size == "64g" and job.env_vars == {"A": "1=2"} and job.tags == {"team": "x"}
    assert (job.experiment, job.display_name, job.max_run_duration_s, job.wait_for_completion) == (
        "exp", "first", 5400.0, False,
    )  # fmt: skip
    with pytest.raises(HimlError, match="max_run_duration_s must be positive, got -1"):
        submit_if_needed(compute="recorder", entry_script=script, max_run_duration_s=-1, host=host, argv=[str(script)])
