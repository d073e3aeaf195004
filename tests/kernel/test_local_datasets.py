"""The built-in dataset provider and the kernel's dataset preparation."""

from __future__ import annotations

from pathlib import Path

import pytest

from himl_kernel.dataset_prep import prepare_datasets
from himl_kernel.datasets import DatasetConfig
from himl_kernel.errors import HimlError
from himl_kernel.plugins import build_host
from himl_kernel.runinfo import RunInfo


@pytest.fixture
def host():  # type: ignore[no-untyped-def]
    return build_host(autoload=False)


def test_local_folder_is_used_as_it_is(host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    data.mkdir()
    folders = prepare_datasets(host, [DatasetConfig(name="d", local_folder=data)], role="input")
    assert folders == [data.resolve()]


def test_missing_local_folder_names_dataset_and_folder(host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(HimlError, match=r"dataset 'd': local_folder '.*absent' does not exist"):
        prepare_datasets(host, [DatasetConfig(name="d", local_folder=tmp_path / "absent")], role="input")


def test_local_folder_that_is_a_file(host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "f").write_text("x")
    with pytest.raises(HimlError, match="is not a folder"):
        prepare_datasets(host, [DatasetConfig(name="d", local_folder=tmp_path / "f")], role="input")


def test_outputs_are_created(host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folders = prepare_datasets(
        host,
        [DatasetConfig(name="a", local_folder=tmp_path / "a"), DatasetConfig(name="b", target_folder=tmp_path / "b"),
         DatasetConfig(name="c")],
        role="output",
    )  # fmt: skip
    assert folders[:2] == [(tmp_path / "a").resolve(), (tmp_path / "b").resolve()]
    assert folders[2] is None
    assert (tmp_path / "a").is_dir() and (tmp_path / "b").is_dir()


def test_filled_target_folder_serves_as_input(host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "t"
    target.mkdir()
    (target / "x.csv").write_text("1")
    assert prepare_datasets(host, [DatasetConfig(name="d", target_folder=target)], role="input") == [target.resolve()]


def test_input_by_name_alone_needs_a_datastore_plugin(host) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(
        HimlError, match=r"input dataset 'panda' in datastore 'blobs' has no local_folder.*himl\[azure\]"
    ):
        prepare_datasets(host, [DatasetConfig(name="panda", datastore="blobs")], role="input")


def test_inside_a_remote_job_local_folders_step_aside(host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    remote = RunInfo("r", "elsewhere", tmp_path, tmp_path, is_remote=True)
    with pytest.raises(HimlError, match="no installed provider"):
        prepare_datasets(host, [DatasetConfig(name="d", local_folder=tmp_path)], role="input", run=remote)
