"""hi-ml's console scripts himl-runner, himl-tb and himl-download: hi-ml's flags become himl's commands."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from himl_kernel.cli.himl_scripts import download_arguments, download_main, tb_arguments, tb_main

from ..conftest import error_lines
from .test_light_imports import heavy_modules

BIN = Path(sys.executable).parent


def _runs(home: Path) -> list[str]:
    """Three runs of experiment ``exp`` in the private store, oldest first; the last two tagged ``stage=b``."""
    from himl_kernel.runstore import RunStore

    store = RunStore()
    ids = []
    for index, stage in enumerate(("a", "b", "b")):
        run = store.create_run("exp", f"run{index}", tags={"stage": stage})
        ids.append(run.run_id)
        store.client.log_text(run.run_id, f"result {index}\n", "outputs/result.txt")
        store.client.log_text(run.run_id, "log\n", "logs/stdout.txt")
        store.finish(run.run_id)
    return ids


def test_tb_flags_become_himl_tb(himl_home: Path, tmp_path: Path) -> None:
    assert tb_arguments(["--run", "r1,r2", "--port", "7007", "--log_dir", "tblogs"]) == [
        "tb", "r1", "r2", "--port", "7007", "--dest", "tblogs",
    ]  # fmt: skip
    latest = tmp_path / "latest_run.txt"
    latest.write_text("run_42\n")
    assert tb_arguments(["--latest_run_file", str(latest)]) == ["tb", "run_42", "--port", "6006"]

    ids = _runs(himl_home)
    assert tb_arguments(["--experiment", "exp"])[1:2] == [ids[-1]]  # the latest run
    assert tb_arguments(["--experiment", "exp", "--num_runs", "2"])[1:3] == [ids[2], ids[1]]
    assert tb_arguments(["--experiment", "exp", "--num_runs", "5", "--tags", "stage=a"])[1:-2] == [ids[0]]


def test_download_writes_each_runs_files_to_the_output_folder(himl_home: Path, tmp_path: Path) -> None:
    ids = _runs(himl_home)
    out = tmp_path / "downloaded"
    assert download_arguments(["--run", f"{ids[0]},{ids[1]}", "--output_folder", str(out), "--prefix", "outputs"]) == [
        ["runs", "download", ids[0], "--dest", str(out / ids[0]), "--path", "outputs"],
        ["runs", "download", ids[1], "--dest", str(out / ids[1]), "--path", "outputs"],
    ]
    assert download_main(["--experiment", "exp", "--tags", "stage=b", "--output_dir", str(out)]) == 0
    assert (out / ids[2] / "outputs" / "result.txt").read_text() == "result 2\n"  # the latest run tagged b
    assert (out / ids[2] / "logs" / "stdout.txt").is_file() and not (out / ids[1]).exists()
    assert download_main(["--run", ids[0], "--output_folder", str(out), "--prefix", "outputs/"]) == 0
    assert (out / ids[0] / "outputs" / "result.txt").read_text() == "result 0\n"
    assert not (out / ids[0] / "logs").exists()


@pytest.mark.parametrize(
    ("main", "argv", "message"),
    [
        (tb_main, [], "one of the arguments --run --latest_run_file --experiment is required"),
        (tb_main, ["--run", "a", "--experiment", "e"], "not allowed with argument"),
        (tb_main, ["--run", "a,,b"], "--run 'a,,b': expected run ids separated by commas"),
        (tb_main, ["--run", "a;rm -rf x"], "is not a run id"),
        (tb_main, ["--run", "a", "--port", "70000"], "expected a port number up to 65535"),
        (tb_main, ["--experiment", "exp", "--num_runs", "0"], "expected 1 or more, got 0"),
        (tb_main, ["--run", "a", "--tags", "stage=b"], "--tags filters the runs of --experiment"),
        (tb_main, ["--experiment", "exp", "--tags", "stage"], "--tags 'stage': expected NAME=VALUE"),
        (tb_main, ["--experiment", "exp", "--tags", "stage=b' or '1"], "without quotes"),
        (tb_main, ["--experiment", "nope"], "nope"),
        (tb_main, ["--latest_run_file", "missing.txt"], "--latest_run_file 'missing.txt': cannot read it"),
        (download_main, ["--run", "a", "--prefix", "../etc"], "--prefix '../etc': expected a path inside"),
        (download_main, ["--experiment", "exp", "--tags", "stage=zzz"], "has no runs with tags stage=zzz"),
    ],
)
def test_a_bad_value_is_one_line(
    himl_home: Path, capsys: pytest.CaptureFixture[str], main: object, argv: list[str], message: str
) -> None:
    if "has no runs" in message:  # the experiment must exist, without the tag asked for
        _runs(himl_home)
    assert callable(main)
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(("himl-tb: error: ", "himl-download: error: ")) and message in line


def test_an_empty_latest_run_file_is_one_line(himl_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Path("latest.txt").write_text("\n")
    assert download_main(["--latest_run_file", "latest.txt"]) == 2
    assert capsys.readouterr().err.strip() == (
        "himl-download: error: --latest_run_file 'latest.txt' is empty: expected the id of a run"
    )


def test_the_scripts_are_installed_and_runner_is_himl_run(tmp_path: Path) -> None:
    env = {"HIML_HOME": str(tmp_path / "home"), "PATH": str(BIN)}
    done = subprocess.run(
        [str(BIN / "himl-runner"), "--model", "HelloWorlds"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode != 0
    (line,) = error_lines(done.stderr)  # himl run's own one line, with its close-match suggestion
    assert "HelloWorlds" in line and "HelloWorld" in line.replace("HelloWorlds", "")
    bad = subprocess.run([str(BIN / "himl-download"), "--run"], env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip() == "himl-download: error: argument --run: expected one argument"


def test_help_imports_nothing_heavy() -> None:
    probe = textwrap.dedent(
        """
        import io, json, sys
        from contextlib import redirect_stdout
        from himl_kernel.cli import himl_scripts
        codes = []
        for main in (himl_scripts.tb_main, himl_scripts.download_main):
            with redirect_stdout(io.StringIO()):
                try:
                    main(["--help"])
                except SystemExit as exc:
                    codes.append(exc.code)
        print(json.dumps({"codes": codes, "modules": sorted(sys.modules)}))
        """
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(done.stdout)
    assert result["codes"] == [0, 0]
    assert heavy_modules(result["modules"]) == []
