"""The AzureML README's dry-run example works as written; ``hello.py --azureml`` with no cluster is one line."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from himl_kernel.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "plugins" / "azure_v2" / "README.md"


def test_readme_dry_run_example_as_written(himl_home: Path, capsys) -> None:
    (line,) = [raw for raw in README.read_text(encoding="utf-8").splitlines() if "--dry-run" in raw]
    argv = shlex.split(line.split("#", 1)[0])
    assert argv[0] == "himl"
    Path("train.py").write_text("print('training')\n")
    Path("environment.yml").write_text("name: t\ndependencies:\n  - python=3.11\n")
    assert main(argv[1:]) == 0
    printed = capsys.readouterr().out
    job = yaml.safe_load(printed)
    assert job["type"] == "command" and job["compute"] == "azureml:cpu"
    assert job["command"] == "python train.py" and job["resources"]["shm_size"] == "100g"


def test_hello_with_azureml_and_no_cluster_is_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HIML_", "AZUREML_"))}
    env["HIML_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [sys.executable, "examples/hello.py", "--azureml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "himl: error: an AzureML job needs a compute cluster: --cluster NAME (compute_cluster_name in Python)"
    ]
