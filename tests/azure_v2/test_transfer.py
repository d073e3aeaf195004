"""upload_to_datastore / download_from_datastore and `himl azure`, against Azurite."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient
from himl_azure_v2.transfer import Progress, download_from_datastore, upload_to_datastore
from himl_azure_v2.workspace import Workspace

from himl_kernel.cli.main import main
from himl_kernel.errors import HimlError
from tests.azure_v2.azurite import Azurite
from tests.azure_v2.control_plane import BLOB_CONTAINER

BIG = 50 * 1024 * 1024


def make_tree(root: Path, count: int = 200, big_index: int = 7) -> dict[str, str]:
    """``count`` files in nested folders, one of them 50 MB; relative path -> MD5."""
    rng = random.Random(1234)
    digests: dict[str, str] = {}
    for i in range(count):
        rel = f"part{i % 4}/sub{i % 3}/file_{i:03d}.bin"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(BIG) if i == big_index else rng.randbytes(rng.randint(0, 64 * 1024))
        path.write_bytes(data)
        digests[rel] = hashlib.md5(data).hexdigest()
    return digests


def tree_digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def blob_digests(service: BlobServiceClient, prefix: str) -> dict[str, str]:
    container = service.get_container_client(BLOB_CONTAINER)
    found = {}
    for blob in container.list_blobs(name_starts_with=prefix):
        md5 = blob.content_settings.content_md5
        found[blob.name[len(prefix) :]] = bytes(md5).hex() if md5 else ""
    return found


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("tree")
    return root, make_tree(root)


def test_upload_then_download_is_byte_identical_and_a_second_upload_transfers_nothing(
    workspace_dir: Path, fresh_containers: BlobServiceClient, tree: tuple[Path, dict[str, str]], capsys
) -> None:
    source, digests = tree
    workspace = Workspace.from_config()

    report = upload_to_datastore(source, "datasets/tree", workspace=workspace)
    assert len(report.transferred) == 200 and not report.skipped and not report.failed
    assert report.bytes_transferred == sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    # every blob carries the MD5 of its source file
    assert blob_digests(fresh_containers, "datasets/tree/") == digests

    again = upload_to_datastore(source, "datasets/tree", workspace=workspace, overwrite=False)
    assert again.transferred == [] and len(again.skipped) == 200 and again.bytes_transferred == 0

    target = workspace_dir / "downloaded"
    down = download_from_datastore("datasets/tree", target, workspace=workspace)
    assert len(down.transferred) == 200
    assert tree_digests(target) == digests

    # a download rerun finds everything in place
    assert download_from_datastore("datasets/tree", target, workspace=workspace).transferred == []
    err = capsys.readouterr().err
    assert "upload: 200 transferred" in err and "200 already there" in err


def test_overwrite_replaces_only_changed_files(workspace_dir: Path, fresh_containers: BlobServiceClient) -> None:
    source = workspace_dir / "small"
    for i in range(5):
        (source / f"f{i}.txt").parent.mkdir(parents=True, exist_ok=True)
        (source / f"f{i}.txt").write_text(f"version one {i}")
    workspace = Workspace.from_config()
    upload_to_datastore(source, "small", workspace=workspace, show_progress=False)
    (source / "f2.txt").write_text("version two")

    kept = upload_to_datastore(source, "small", workspace=workspace, overwrite=False, show_progress=False)
    assert kept.transferred == []
    replaced = upload_to_datastore(source, "small", workspace=workspace, overwrite=True, show_progress=False)
    assert replaced.transferred == ["f2.txt"] and len(replaced.skipped) == 4
    assert blob_digests(fresh_containers, "small/")["f2.txt"] == hashlib.md5(b"version two").hexdigest()


def test_interrupted_upload_finishes_after_restart_without_loss_or_duplicates(
    workspace_dir: Path,
    fresh_containers: BlobServiceClient,
    azurite: Azurite,
    tree: tuple[Path, dict[str, str]],
) -> None:
    source, digests = tree
    workspace = Workspace.from_config()
    stopped: list[int] = []

    def stop_azurite_midway(progress: Progress) -> None:
        if progress.done >= 60 and not stopped:
            stopped.append(progress.done)
            azurite.stop()

    try:
        with pytest.raises(HimlError, match=r"file\(s\) failed.*rerun the same command to finish") as failure:
            upload_to_datastore(
                source,
                "interrupted",
                workspace=workspace,
                retries=0,
                max_workers=4,
                show_progress=False,
                progress=stop_azurite_midway,
            )
    finally:
        azurite.start()
    assert stopped, "Azurite was never stopped"
    assert "\n" not in str(failure.value)
    before = blob_digests(fresh_containers, "interrupted/")
    assert 60 <= len(before) < 200

    rerun = upload_to_datastore(source, "interrupted", workspace=workspace, show_progress=False)
    assert len(rerun.transferred) == 200 - len(before)
    assert len(rerun.skipped) == len(before)
    after = blob_digests(fresh_containers, "interrupted/")
    assert after == digests  # every file exactly once, each with its source's MD5
    names = [b.name for b in fresh_containers.get_container_client(BLOB_CONTAINER).list_blobs()]
    assert len(names) == len(set(names))


def test_himl_azure_upload_and_download_commands(
    workspace_dir: Path, fresh_containers: BlobServiceClient, capsys
) -> None:
    source = workspace_dir / "cli_src"
    (source / "a").mkdir(parents=True)
    (source / "a" / "one.txt").write_text("one")
    (source / "two.txt").write_text("two")
    assert main(["azure", "upload", str(source), "cli/data"]) == 0
    assert main(["azure", "upload", str(source), "cli/data", "--quiet"]) == 0
    assert "0 transferred" in capsys.readouterr().out
    assert main(["azure", "download", "cli/data", str(workspace_dir / "cli_dst"), "--quiet"]) == 0
    assert tree_digests(workspace_dir / "cli_dst") == tree_digests(source)


def test_download_of_a_missing_folder_and_an_unknown_datastore_are_one_line_errors(
    workspace_dir: Path, fresh_containers: BlobServiceClient, capsys
) -> None:
    assert main(["azure", "download", "no/such/folder", str(workspace_dir / "x")]) == 2
    assert main(["azure", "upload", str(workspace_dir), "x", "--datastore", "nostore"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("himl: error:")]
    assert errors == [
        f"himl: error: download: nothing found at {BLOB_CONTAINER}/no/such/folder/",
        "himl: error: datastore 'nostore' does not exist in workspace 'himl-ws'",
    ]
