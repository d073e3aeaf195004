"""Credentials in URLs and secret parameters never reach the run store, its logs or what himl prints."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from himl_kernel import hookimpl
from himl_kernel.cli.main import main
from himl_kernel.container import Container
from himl_kernel.plugins import build_host
from himl_kernel.redact import mask_data, mask_secrets
from himl_kernel.runinfo import RunInfo
from himl_kernel.runstore import RunStore, StoredRun

from ..conftest import HIML, JOB_VARIABLES


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("https://alice:s3cret@host:5000/api?x=1", "https://alice:***@host:5000/api?x=1"),
        ("https://acc.blob.core.windows.net/c/f?sv=2022-11-02&se=2030&sig=Ab%2Fc%3D", None),
        ("--data https://h/x?token=T1&key=K2 --max_epochs 2", "--data https://h/x?token=***&key=*** --max_epochs 2"),
        ("AccountName=a;AccountKey=abc/9+==;EndpointSuffix=core", "AccountName=a;AccountKey=***;EndpointSuffix=core"),
        (
            "?access_token=eyJ.a.b&refresh_token=r&client_secret=c",
            "?access_token=***&refresh_token=***&client_secret=***",
        ),
        ("--sas-token ABC --password 'hunter2' --api_key=XYZ", "--sas-token *** --password '***' --api_key=***"),
        ("--monkey 3 --key_count=3 crossval_index=1 https://host/p", None),
    ],
)
def test_mask_secrets_hides_each_kind_of_credential(text: str, masked: str | None) -> None:
    # None: a SAS URL keeps everything but its signature; plain text is left alone
    expected = text.replace("sig=Ab%2Fc%3D", "sig=***") if masked is None else masked
    assert mask_secrets(text) == expected


def test_mask_data_reads_a_list_of_words_as_a_command_line_and_secret_names() -> None:
    job = {
        "args": ["--token", "T", "--epochs", "2", "--password", "--next"],
        "env": {"URL": "https://u:p@h", "HF_TOKEN": "hf_abc", "PATH": "/bin"},
        "tags": {"himl.resume_key": "0123abcd", "num_keys": "3"},
    }
    assert mask_data(job) == {
        "args": ["--token", "***", "--epochs", "2", "--password", "--next"],
        "env": {"URL": "https://u:***@h", "HF_TOKEN": "***", "PATH": "/bin"},
        "tags": {"himl.resume_key": "0123abcd", "num_keys": "3"},  # the kernel's own tags, and plain names, stay
    }


# What the tests plant: each must be masked everywhere himl stores or prints.
SECRETS = ("PLANTED-PASSWORD-1", "PLANTED-SIG-2", "PLANTED-TOKEN-3", "PLANTED-KEY-4", "PLANTED-PASSWORD-5")

JOB = """\
import sys
argv = " ".join(sys.argv[1:])
# the job itself receives the real values: masking is for what is stored and shown, not for the job
sys.exit(0 if "PLANTED-SIG-2" in argv and "PLANTED-TOKEN-3" in argv and "PLANTED-KEY-4" in argv else 3)
"""


def _all_runs(home: Path) -> list[StoredRun]:
    return RunStore(home=home).list_runs(max_results=1000)


def _assert_nowhere(home: Path, *texts: str) -> None:
    """No planted secret in any run's name, param or tag, in the store's database or in any log file."""
    for run in _all_runs(home):
        stored = " ".join([run.name, *run.params.values(), *run.tags.values(), *run.params, *run.tags])
        for secret in SECRETS:
            assert secret not in stored, (secret, run.run_id)
    raw = b"".join(path.read_bytes() for path in home.rglob("*") if path.is_file() and "outputs" not in path.parts)
    for secret in SECRETS:
        assert secret.encode() not in raw, secret
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, secret


def test_a_planted_credential_reaches_no_param_tag_message_or_log_through_submit(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (tmp_path / "job.py").write_text(JOB)
    env = {k: v for k, v in os.environ.items() if k not in JOB_VARIABLES}
    env.update({"HIML_HOME": str(home), "HIML_PLUGIN_AUTOLOAD": "0"})
    args = [
        "submit", "job.py",
        "--display-name", "copy of https://bob:PLANTED-PASSWORD-1@data.example.org/set",
        "--tag", "source=https://acc.blob.core.windows.net/c?sv=2022&sig=PLANTED-SIG-2",
        "--tag", "access_token=PLANTED-TOKEN-3", "--env", "HF_TOKEN=PLANTED-TOKEN-3",
        "--", "--data", "https://acc.blob.core.windows.net/c?sv=2022&sig=PLANTED-SIG-2",
        "--token", "PLANTED-TOKEN-3", "--storage", "AccountName=a;AccountKey=PLANTED-KEY-4;",
    ]  # fmt: skip
    done = subprocess.run([HIML, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr + done.stdout
    (run,) = _all_runs(home)
    assert run.status == "FINISHED"
    assert run.name == "copy of https://bob:***@data.example.org/set"
    assert "sig=***" in run.tags["himl.command"] and "--token ***" in run.tags["himl.command"]
    assert run.tags["source"] == "https://acc.blob.core.windows.net/c?sv=2022&sig=***"
    assert run.tags["access_token"] == "***"  # a tag whose name says secret is masked whole
    assert (run.artifact_folder / "logs" / "stdout.txt").read_text().startswith("$ ")  # type: ignore[operator]
    _assert_nowhere(home, done.stdout, done.stderr)

    dry = subprocess.run([HIML, *args[:2], "--dry-run", *args[2:]], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert "sig=***" in dry.stdout
    _assert_nowhere(home, dry.stdout, dry.stderr)


class Leaky(Container):
    """A model whose settings carry a URL with a password."""

    data_url: str = "https://example.org/data"
    api_key: str = ""

    def run(self, run_info: RunInfo) -> None:
        assert "PLANTED-PASSWORD-5" in self.data_url and self.api_key == "PLANTED-KEY-4"  # the model gets them
        (run_info.output_folder / "done.txt").write_text("ok")


class _LeakyPlugin:
    @hookimpl
    def himl_register_containers(self, registry: object) -> None:
        registry.add("Leaky", f"{__name__}:Leaky", "a model with a secret in its settings")  # type: ignore[attr-defined]


def test_a_credential_in_a_model_field_is_masked_in_params_and_messages(
    himl_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    host = build_host(autoload=False, extra_plugins={"leaky": _LeakyPlugin()}, environ={})
    monkeypatch.setattr("himl_kernel.plugins.build_host", lambda **_: host)
    url = "https://carol:PLANTED-PASSWORD-5@data.example.org/set?x=1"
    assert main(["run", "--model", "Leaky", "--data_url", url, "--api_key", "PLANTED-KEY-4"]) == 0
    (run,) = _all_runs(himl_home)
    assert run.params["data_url"] == "https://carol:***@data.example.org/set?x=1"
    assert run.params["api_key"] == "***"  # a field whose name says secret is masked whole
    out, err = capsys.readouterr()
    _assert_nowhere(himl_home, out, err)


def test_an_error_message_is_masked_too(
    himl_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://dave:PLANTED-PASSWORD-1@127.0.0.1:1/mlflow")
    assert main(["runs", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("himl: error: the run store https://dave:***@127.0.0.1:1/mlflow cannot be reached")
    assert "PLANTED" not in err


def test_every_one_line_error_is_masked(himl_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "show", "https://erin:PLANTED-PASSWORD-1@host/x?sig=PLANTED-SIG-2"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "himl: error: unknown run id 'https://erin:***@host/x?sig=***' in the run store " + (
        f"sqlite:///{himl_home / 'mlflow.db'}"
    )
