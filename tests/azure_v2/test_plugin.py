"""The plugin as the kernel sees it: registrations, options, light imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import himl_azure_v2.plugin
import pytest

from himl_kernel.argparsing import HimlArgumentParser
from himl_kernel.cli.job_options import add_job_options, build_job, submit_job
from himl_kernel.doctor import DoctorReport
from himl_kernel.errors import HimlError
from himl_kernel.job import Entry
from himl_kernel.shared_options import SHARED_NAMES, honoured_by
from himl_kernel.submit import pop_backend_flags
from himl_kernel.testing import fresh_host

PROBE = """
import json, sys
from himl_kernel.plugins import build_host
host = build_host()
for attr in ("compute_backends", "dataset_providers", "checkpoint_sources", "loggers", "commands"):
    list(getattr(host, attr))
import himl_azure_v2
print(json.dumps({"azure": [p.name for p in host.plugins if p.name == "azure_v2" and p.status == "ok"],
                  "heavy": sorted(m for m in sys.modules if m.split(".")[0] in ("azure", "azureml", "mlflow"))}))
"""


def test_discovery_and_the_package_import_no_azure_sdk_or_mlflow(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIML_")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == {"azure": ["azure_v2"], "heavy": []}


def test_registrations_and_the_azureml_script_flag() -> None:
    host = fresh_host(himl_azure_v2.plugin, names=["azure_v2"])
    assert host.plugin("azure_v2").status == "ok"  # type: ignore[union-attr]
    assert host.compute_backends.entry("azureml").options["script_flag"] == "--azureml"
    assert "azureml" in host.dataset_providers and "azureml-run" in host.checkpoint_sources
    assert "azureml" in host.loggers and "azure" in host.commands
    argv = ["train.py", "--lr", "1", "--azureml"]
    assert pop_backend_flags(argv, host) == "azureml" and argv == ["train.py", "--lr", "1"]


def test_cluster_distribution_and_workspace_options_reach_the_job(tmp_path: Path) -> None:
    host = fresh_host(himl_azure_v2.plugin, names=["azure_v2"])
    parser = HimlArgumentParser(prog="himl run", add_help=False)
    add_job_options(parser, host, "run")
    argv = ["--cluster", "gpu-nc24", "--distribution", "pytorch", "--workspace-config", "c.json", "--num_nodes", "2"]

    job = build_job(
        parser.parse_args(["--compute", "azureml", *argv]), host, entry=Entry("script", "t.py"), experiment="e"
    )

    assert job.compute.target == "gpu-nc24"  # the kernel's shared option, read by the backend from the JobSpec
    assert job.compute.num_nodes == 2
    assert job.compute.options == {"distribution": "pytorch", "workspace_config": "c.json"}
    assert host.option_owners == {
        "--no-resume": "local",
        "--distribution": "azure_v2",
        "--workspace-config": "azure_v2",
    }
    local = build_job(parser.parse_args(argv), host, entry=Entry("script", "t.py"), experiment="e")
    assert local.compute.options == {"resume": True}
    with pytest.raises(HimlError) as excinfo:
        submit_job(local, host, dry_run=True)
    assert str(excinfo.value) == (
        "--cluster 'gpu-nc24': compute backend 'local' cannot honour it; "
        "drop it, or choose a backend that can with --compute"
    )


def test_the_azureml_backend_declares_every_shared_option() -> None:
    host = fresh_host(himl_azure_v2.plugin, names=["azure_v2"])
    assert honoured_by(host.compute_backends.entry("azureml")) == SHARED_NAMES
    assert honoured_by(host.compute_backends.entry("local")) == {"max_run_duration"}


def test_doctor_reports_the_workspace_and_the_credentials(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    report = DoctorReport()
    himl_azure_v2.plugin.himl_doctor(report)
    rows = {row.topic: row.status for row in report.rows}
    packages = {topic: status for topic, status in rows.items() if topic.startswith("azureml: ")}
    assert packages["azureml: azure-ai-ml"] == "ok" and set(packages.values()) == {"ok"}  # its own requirements
    assert {k: v for k, v in rows.items() if k not in packages} == {
        "azureml workspace": "missing",
        "azure credentials": "ok",
    }
