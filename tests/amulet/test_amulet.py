"""The Amulet plugin: configurations it writes, the schema that checks them, amlt calls, job detection."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from himl_amulet.injob import is_amulet_job, run_info_from_environ
from himl_amulet.schema import validate_config

from himl_kernel.errors import HimlError
from himl_kernel.version import __version__

from ..conftest import HIML, error_lines

# A stand-in for Amulet's `amlt` (not on the public index): it records each call and the config it was given,
# and refuses what the real one would refuse (an unknown subcommand, a config that is not a mapping with jobs).
FAKE_AMLT = """#!{python}
import json, os, sys
from pathlib import Path
import yaml
args = sys.argv[1:]
if args == ["--version"]:
    print("amlt 10.0.0 (test stand-in)")
    sys.exit(0)
if not args or args[0] not in ("run", "status", "logs", "results"):
    print(f"amlt: unknown command {{args[:1]}}", file=sys.stderr)
    sys.exit(2)
record = {{"args": args, "cwd": os.getcwd()}}
if args[0] == "run":
    config = yaml.safe_load(Path(args[1]).read_text())
    if not isinstance(config, dict) or not (config.get("jobs") or config.get("search")):
        print("amlt: the config has no jobs", file=sys.stderr)
        sys.exit(3)
    record["config"] = config
with open(os.environ["AMLT_RECORD"], "a") as handle:
    handle.write(json.dumps(record) + "\\n")
"""


def _himl(
    *args: str, cwd: Path, path: str | None = None, record: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HIML_HOME": str(cwd / "home")}
    env["PATH"] = (
        path
        if path is not None
        else os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not (Path(p) / "amlt").exists())
    )
    if record is not None:
        env["AMLT_RECORD"] = str(record)
    return subprocess.run([HIML, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


GOLDEN = Path(__file__).with_name("golden")


def _dry_run(tmp_path: Path, *args: str, command: tuple[str, ...] = ("run",), golden: str = "") -> dict[str, Any]:
    done = _himl(*command, "--compute", "amulet", "--amulet-target", "vc1", "--dry-run", *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    document = yaml.safe_load(done.stdout)
    validate_config(document)  # what is printed passes the plugin's own schema
    if golden:
        # The whole configuration, as reviewed in tests/amulet/golden (the version is the only moving part).
        expected = (GOLDEN / golden).read_text().replace("{version}", __version__)
        assert document == yaml.safe_load(expected)
    return document


def test_one_node_gpu_job(tmp_path: Path) -> None:
    document = _dry_run(tmp_path, "--model", "HelloWorld", "--amulet-gpus", "1", golden="one_node_gpu.yaml")
    assert document["target"] == {"service": "sing", "name": "vc1"}
    assert document["code"] == {"local_dir": "$CONFIG_DIR"}
    (job,) = document["jobs"]
    assert job["sku"] == "G1" and job["process_count_per_node"] == 0  # Lightning starts its own processes
    assert job["command"] == ["env -u RANK python -m himl_kernel run --model HelloWorld"]
    assert job["submit_args"]["env"]["HIML_BACKEND"] == "amulet"


def test_two_node_job_uses_the_env_defaults_sku(tmp_path: Path) -> None:
    document = _dry_run(
        tmp_path, "--model", "HelloWorld", "--num_nodes", "2", "--amulet-gpus", "4", golden="two_nodes.yaml"
    )
    assert document["env_defaults"] == {"NODES": 2, "GPUS": 4, "MEM": 32}
    (job,) = document["jobs"]
    assert job["sku"] == "${NODES}x${MEM}G${GPUS}" and job["process_count_per_node"] == 0


def test_script_job_with_pip_requirements(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print('hi')\n")
    (tmp_path / "requirements.txt").write_text("numpy\n")
    document = _dry_run(
        tmp_path, "--pip-requirements", "requirements.txt", command=("submit", "train.py"), golden="script_pip.yaml"
    )
    (job,) = document["jobs"]
    assert job["command"] == ["python train.py"] and "process_count_per_node" not in job
    # The default image has no himl, and the requirements do not name it: a setup command installs it.
    assert document["environment"]["setup"] == [
        "pip install -r requirements.txt",
        f"pip install 'himl[amulet]=={__version__}'",
    ]


def test_crossvalidation_becomes_a_grid_search(tmp_path: Path) -> None:
    document = _dry_run(tmp_path, "--model", "HelloWorld", "--crossval_count", "3", golden="crossval_search.yaml")
    search = document["search"]
    assert search["type"] == "grid" and search["max_trials"] == 3
    assert search["params"] == [{"name": "crossval_index", "spec": "discrete", "values": [0, 1, 2]}]
    assert "--crossval_index {crossval_index}" in search["job_template"]["command"][0]


@pytest.mark.parametrize(
    ("sku", "message"),
    [("X9", "jobs[0].sku: 'X9' is not an Amulet sku"), ("2xG0", "jobs[0].sku: '2xG0' asks for zero nodes")],
)
def test_a_malformed_sku_is_one_line_naming_the_field(tmp_path: Path, sku: str, message: str) -> None:
    done = _himl(
        "run", "--model", "HelloWorld", "--compute", "amulet", "--amulet-target", "vc1", "--amulet-sku", sku,
        "--dry-run", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode != 0
    (line,) = error_lines(done.stderr)
    assert message in line


def test_the_schema_rejects_a_hand_written_config() -> None:
    good = {
        "target": {"service": "sing", "name": "vc1"},
        "environment": {"image": "python:3.11"},
        "code": {"local_dir": "$CONFIG_DIR"},
        "jobs": [{"name": "a", "sku": "G1", "command": ["x"]}],
    }
    validate_config(good)
    with pytest.raises(HimlError, match=r"jobs\[0\]\.sku: '4x' is not an Amulet sku"):
        validate_config({**good, "jobs": [{"name": "a", "sku": "4x", "command": ["x"]}]})
    with pytest.raises(HimlError, match="job names must be unique, repeated: a"):
        validate_config({**good, "jobs": [{**good["jobs"][0]}, {**good["jobs"][0]}]})  # two jobs named a
    with pytest.raises(HimlError, match="expected a mapping"):
        validate_config(["not", "a", "mapping"])


def _fake_amlt(folder: Path) -> Path:
    folder.mkdir()
    amlt = folder / "amlt"
    amlt.write_text(FAKE_AMLT.format(python=sys.executable))
    amlt.chmod(amlt.stat().st_mode | stat.S_IXUSR)
    return folder


def test_run_calls_amlt_as_the_manual_does(tmp_path: Path) -> None:
    bin_dir = _fake_amlt(tmp_path / "bin")
    record = tmp_path / "calls.jsonl"
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    done = _himl(
        "run", "--model", "HelloWorld", "--compute", "amulet", "--amulet-target", "vc1", cwd=tmp_path, path=path,
        record=record,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (call,) = [json.loads(line) for line in record.read_text().splitlines()]
    assert call["args"] == ["run", "amlt.yaml", "HelloWorld", "-t", "vc1"]
    assert Path(call["cwd"]) == tmp_path
    assert call["config"] == yaml.safe_load((tmp_path / "amlt.yaml").read_text())
    assert "amlt status HelloWorld" in done.stderr

    status = _himl("amulet", "status", "HelloWorld", cwd=tmp_path, path=path, record=record)
    assert status.returncode == 0, status.stderr
    assert json.loads(record.read_text().splitlines()[-1])["args"] == ["status", "HelloWorld"]


def test_the_stand_in_refuses_a_wrong_call(tmp_path: Path) -> None:
    bin_dir = _fake_amlt(tmp_path / "bin")
    env = {**os.environ, "AMLT_RECORD": str(tmp_path / "calls.jsonl")}
    assert subprocess.run([str(bin_dir / "amlt"), "submit"], env=env, capture_output=True).returncode == 2
    (tmp_path / "empty.yaml").write_text("description: no jobs\n")
    assert subprocess.run([str(bin_dir / "amlt"), "run", "empty.yaml", "x"], env=env, cwd=tmp_path).returncode == 3


def test_without_amlt_the_config_is_written_and_one_line_gives_the_command(tmp_path: Path) -> None:
    done = _himl("run", "--model", "HelloWorld", "--compute", "amulet", "--amulet-target", "vc1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "amlt is not on PATH, so the job was not submitted" in done.stderr
    assert f"cd {tmp_path} && amlt run amlt.yaml HelloWorld -t vc1" in done.stderr
    validate_config(yaml.safe_load((tmp_path / "amlt.yaml").read_text()))


def test_an_amulet_job_is_claimed_by_amulet_and_not_by_azureml(tmp_path: Path) -> None:
    from himl_kernel.plugins import build_host

    outputs = tmp_path / "amlt_out"
    environ = {
        "AMLT_OUTPUT_DIR": str(outputs),
        "AZUREML_ARM_PROJECT_NAME": "proj",
        "SNAPSHOT_DIR": str(tmp_path),
        "AZUREML_RUN_ID": "job_1",
        "MLFLOW_RUN_ID": "run1",
        "HIML_BACKEND": "amulet",
        "AZUREML_DATAREFERENCE_data": str(tmp_path / "data"),
    }
    assert is_amulet_job(environ)
    info = run_info_from_environ(environ)
    assert info is not None and info.backend == "amulet"
    detected = build_host().detect_run(environ)
    assert detected is not None and detected.backend == "amulet"
    assert not is_amulet_job({**environ, "HIML_BACKEND": "azureml"})  # another backend's job, even on AzureML


def test_a_base_image_without_himl_is_one_warning_naming_the_setup_command(tmp_path: Path) -> None:
    args = ("run", "--model", "HelloWorld", "--compute", "amulet", "--amulet-target", "vc1", "--dry-run")
    done = _himl(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (warning,) = [line for line in done.stderr.splitlines() if "does not contain himl" in line]
    assert f"setup command: pip install 'himl[amulet]=={__version__}'" in warning
    assert yaml.safe_load(done.stdout)["environment"]["setup"] == [f"pip install 'himl[amulet]=={__version__}'"]


def test_an_image_of_ones_own_or_requirements_naming_himl_add_no_setup(tmp_path: Path) -> None:
    from himl_amulet.config import AmuletSettings, build_config, himl_setup

    from himl_kernel.job import Compute, Entry, Environment, JobSpec
    from himl_kernel.snapshot import Snapshot

    def job(**environment: Any) -> JobSpec:
        return JobSpec(
            entry=Entry("script", "train.py"),
            snapshot=Snapshot(tmp_path),
            environment=Environment(**environment),
            compute=Compute(backend="amulet"),
        )

    settings = AmuletSettings(target="vc1")
    assert himl_setup(job()) == f"pip install 'himl[amulet]=={__version__}'"  # the default image
    own = build_config(job(docker_image="myregistry.io/himl-train:3"), settings)
    assert "setup" not in own["environment"]  # an image of the user's own is taken to hold himl
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy\nhiml[cpath]==0.1.0\n")
    named = build_config(job(pip_requirements=requirements), settings)
    assert named["environment"]["setup"] == ["pip install -r requirements.txt"]
    requirements.write_text("numpy\nhiml-tools\n")  # another distribution whose name starts with himl
    assert himl_setup(job(pip_requirements=requirements)) is not None
