"""The shared compute options: one definition, in the JobSpec, refused where a backend cannot honour them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from himl_kernel import hookimpl
from himl_kernel.argparsing import HimlArgumentParser
from himl_kernel.cli.job_options import add_job_options, build_job, submit_job
from himl_kernel.cli.main import main
from himl_kernel.errors import HimlError
from himl_kernel.job import Entry
from himl_kernel.registry import Registry
from himl_kernel.shared_options import SHARED_NAMES, SHARED_OPTIONS, honoured_by
from himl_kernel.submit import submit_if_needed
from himl_kernel.testing import fresh_host
from tests.conftest import error_lines

#: A non-default value for each shared option on the command line, and the flag messages name.
NON_DEFAULT = {
    "cluster": ["--cluster", "gpu-1"],
    "num_nodes": ["--num_nodes", "2"],
    "processes_per_node": ["--processes-per-node", "4"],
    "max_run_duration": ["--max-run-duration", "2h"],
    "no_wait": ["--no-wait"],
    "conda_file": ["--conda_env", "environment.yml"],
    "pip_requirements": ["--pip-requirements", "requirements.txt"],
    "docker_image": ["--docker-image", "img:1"],
    "shm_size": ["--docker_shm_size", "100g"],
}


class Everywhere:
    """A backend that registers without saying what it honours."""

    @hookimpl
    def himl_register_compute_backends(self, registry: Registry[Any]) -> None:
        registry.add("everywhere", "himl_kernel.backends.local:LocalBackend", "honours all by default")
        registry.add("typo", "himl_kernel.backends.local:LocalBackend", "a bad declaration", honours=("clustr",))


def test_the_table_names_every_shared_option_once() -> None:
    assert set(NON_DEFAULT) == SHARED_NAMES
    flags = [flag for option in SHARED_OPTIONS for flag in option.flags]
    assert len(flags) == len(set(flags))


@pytest.mark.parametrize("name", sorted(NON_DEFAULT))
def test_the_local_backend_refuses_each_shared_option_it_cannot_honour(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "environment.yml").write_text("name: x\n", encoding="utf-8")
    (tmp_path / "requirements.txt").write_text("numpy\n", encoding="utf-8")
    host = fresh_host(Everywhere(), names=["everywhere"])
    parser = HimlArgumentParser(prog="himl submit", add_help=False)
    add_job_options(parser, host, "submit")
    entry = Entry("script", "train.py")

    job = build_job(parser.parse_args(NON_DEFAULT[name]), host, entry=entry, experiment="e")
    shown = next(option.flags[0] for option in SHARED_OPTIONS if option.name == name)

    if name == "max_run_duration":
        assert job.max_run_duration_s == 7200
        submit_job(job, host, dry_run=True)  # honoured by local: nothing refused
        return
    with pytest.raises(HimlError) as excinfo:
        submit_job(job, host, dry_run=True)
    message = str(excinfo.value)
    assert message.startswith(f"{shown}")
    assert message.endswith(
        "compute backend 'local' cannot honour it; drop it, or choose a backend that can with --compute"
    )
    # A backend that declares nothing is trusted with every shared option.
    job.compute.backend = "everywhere"
    submit_job(job, host, dry_run=True)


def test_a_declaration_naming_no_shared_option_is_one_line() -> None:
    host = fresh_host(Everywhere(), names=["everywhere"])

    assert honoured_by(host.compute_backends.entry("everywhere")) == SHARED_NAMES
    with pytest.raises(HimlError) as excinfo:
        honoured_by(host.compute_backends.entry("typo"))
    assert str(excinfo.value).startswith(
        "compute backend 'typo' of plugin everywhere (registered in code) declares honours=clustr, "
        "which are not shared options; known: cluster, conda_file,"
    )


def test_himl_submit_with_cluster_on_local_is_one_line_and_runs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HIML_HOME", str(tmp_path / "store"))
    (tmp_path / "train.py").write_text("open('ran', 'w').close()\n", encoding="utf-8")

    code = main(["submit", "train.py", "--cluster", "gpu-1"])

    assert code == 2
    assert error_lines(capsys.readouterr().err) == [
        "himl: error: --cluster 'gpu-1': compute backend 'local' cannot honour it; "
        "drop it, or choose a backend that can with --compute"
    ]
    assert not (tmp_path / "ran").exists()
    assert not (tmp_path / "store").exists()


def test_submit_if_needed_refuses_a_compute_target_the_local_backend_cannot_use(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("", encoding="utf-8")

    with pytest.raises(HimlError, match=r"^--cluster 'gpu-1': compute backend 'local' cannot honour it"):
        submit_if_needed(
            compute="local",
            compute_target="gpu-1",
            entry_script=script,
            snapshot_root=tmp_path,
            host=fresh_host(),
            argv=[str(script)],
        )
