"""Copying folders to and from a datastore's blob container, in parallel, MD5-checked.

- ``overwrite=False``: a blob (or local file) that already exists is left alone;
- ``overwrite=True``: it is replaced, unless its MD5 equals the source's.

Either way a rerun after an interruption (a lost connection, Ctrl-C) transfers
only what is missing: an upload is committed per file, so a blob either exists
whole or not at all; a download lands in a hidden ``.<name>.himl-partial`` file
that is renamed only once its MD5 matches the blob's.

Every uploaded blob carries its content MD5 (checked by the service on each
request, and stored on the blob); every download is compared with it.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

    from himl_azure_v2.workspace import Workspace

Direction = Literal["upload", "download"]
PARTIAL_SUFFIX = ".himl-partial"
_CHUNK = 4 << 20


@dataclass
class TransferReport:
    """What a transfer did.

    Attributes:
        direction: ``upload`` or ``download``.
        transferred: the files copied (paths relative to the folder).
        skipped: the files left alone because they were already there.
        failed: the files that could not be copied, with the reason.
        bytes_transferred: the bytes copied.
        seconds: how long it took.
    """

    direction: Direction
    transferred: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    bytes_transferred: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        mb = self.bytes_transferred / 1e6
        rate = f", {mb / self.seconds:.1f} MB/s" if self.seconds > 0 and mb > 0 else ""
        return (
            f"{self.direction}: {len(self.transferred)} transferred ({mb:.1f} MB{rate}), "
            f"{len(self.skipped)} already there, {len(self.failed)} failed, in {self.seconds:.1f} s"
        )


@dataclass
class Progress:
    """Passed to a progress callback after each file."""

    done: int
    total: int
    bytes_done: int
    path: str


ProgressCallback = Callable[[Progress], None]


def file_md5(path: Path) -> bytes:
    """The MD5 digest of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.digest()


def _blob_md5(properties: Any) -> bytes | None:
    settings = getattr(properties, "content_settings", None)
    value = getattr(settings, "content_md5", None)
    return bytes(value) if value else None


def _clean_prefix(remote_folder: str) -> str:
    parts = PurePosixPath(remote_folder.replace("\\", "/").strip("/")).parts
    if ".." in parts:
        raise HimlError(f"datastore folder {remote_folder!r} must not contain '..'")
    return "/".join(parts) + "/" if parts else ""


def _local_files(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.endswith(PARTIAL_SUFFIX):
                yield Path(dirpath, name)


class _Printer:
    """At most one progress line a second on stderr, then a summary."""

    def __init__(self, label: str, enabled: bool, callback: ProgressCallback | None) -> None:
        self.label = label
        self.enabled = enabled
        self.callback = callback
        self.lock = threading.Lock()
        self.done = 0
        self.bytes = 0
        self.last = 0.0

    def file_done(self, rel: str, size: int, total: int) -> None:
        with self.lock:
            self.done += 1
            self.bytes += size
            progress = Progress(self.done, total, self.bytes, rel)
            now = time.monotonic()
            if self.enabled and (now - self.last >= 1.0 or self.done == total):
                self.last = now
                print(
                    f"himl: {self.label}: {self.done}/{total} files, {self.bytes / 1e6:.1f} MB",
                    file=sys.stderr,
                    flush=True,
                )
        if self.callback is not None:
            self.callback(progress)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _run_parallel(
    jobs: list[tuple[str, Callable[[], int]]],
    report: TransferReport,
    printer: _Printer,
    max_workers: int,
) -> None:
    total = len(jobs)
    lock = threading.Lock()

    def work(rel: str, action: Callable[[], int]) -> None:
        try:
            size = action()
        except Exception as exc:  # a lost connection must not stop the other files
            with lock:
                report.failed[rel] = _one_line(exc)
            return
        with lock:
            report.transferred.append(rel)
            report.bytes_transferred += size
        printer.file_done(rel, size, total)

    with ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
        for future in [pool.submit(work, rel, action) for rel, action in jobs]:
            future.result()
    report.transferred.sort()


def _finish(report: TransferReport, where: str, started: float) -> TransferReport:
    report.seconds = time.monotonic() - started
    if report.failed:
        first = sorted(report.failed.items())[0]
        raise HimlError(
            f"{report.direction} {where}: {len(report.failed)} file(s) failed, {len(report.transferred)} transferred "
            f"(first failure {first[0]}: {first[1]}); rerun the same command to finish, nothing done is redone"
        )
    return report


# --- upload -----------------------------------------------------------------------


def upload_folder(
    container: ContainerClient,
    local_folder: str | Path,
    remote_folder: str = "",
    *,
    overwrite: bool = False,
    max_workers: int = 8,
    show_progress: bool = True,
    progress: ProgressCallback | None = None,
) -> TransferReport:
    """Upload a folder's files (or one file) below ``remote_folder`` in ``container``."""
    from azure.storage.blob import ContentSettings

    started = time.monotonic()
    source = Path(local_folder).expanduser()
    if not source.exists():
        raise HimlError(f"upload: {str(source)!r} does not exist")
    prefix = _clean_prefix(remote_folder)
    files = [source] if source.is_file() else list(_local_files(source))
    base = source.parent if source.is_file() else source
    existing = {b.name: b for b in container.list_blobs(name_starts_with=prefix or None)}
    report = TransferReport("upload")
    jobs: list[tuple[str, Callable[[], int]]] = []

    def upload_one(path: Path, blob_name: str, digest: bytes | None) -> int:
        md5 = digest or file_md5(path)
        with path.open("rb") as handle:
            container.upload_blob(
                blob_name,
                handle,
                overwrite=True,
                content_settings=ContentSettings(content_md5=bytearray(md5)),
                validate_content=True,
                max_concurrency=4,
            )
        return path.stat().st_size

    for path in files:
        rel = path.relative_to(base).as_posix()
        blob_name = prefix + rel
        digest: bytes | None = None
        if blob_name in existing:
            if not overwrite:
                report.skipped.append(rel)
                continue
            digest = file_md5(path)
            if _blob_md5(existing[blob_name]) == digest:
                report.skipped.append(rel)
                continue
        jobs.append((rel, lambda p=path, b=blob_name, d=digest: upload_one(p, b, d)))  # type: ignore[misc]
    printer = _Printer("upload", show_progress, progress)
    _run_parallel(jobs, report, printer, max_workers)
    return _finish(report, f"of {str(source)!r} to {container.container_name}/{prefix}", started)


# --- download -----------------------------------------------------------------------


def download_blob(container: ContainerClient, blob: Any, local: Path) -> int:
    """Download one blob (its listing properties) to ``local``, atomically, checked against its MD5."""
    local.parent.mkdir(parents=True, exist_ok=True)
    partial = local.with_name(f".{local.name}{PARTIAL_SUFFIX}")
    try:
        with partial.open("wb") as handle:
            container.download_blob(blob.name, max_concurrency=4).readinto(handle)
        expected = _blob_md5(blob)
        if expected is not None:
            actual = file_md5(partial)
            if actual != expected:
                raise HimlError(f"MD5 of downloaded {blob.name!r} is {actual.hex()}, the blob says {expected.hex()}")
        partial.replace(local)
    finally:
        partial.unlink(missing_ok=True)
    return int(blob.size)


def download_folder(
    container: ContainerClient,
    remote_folder: str,
    local_folder: str | Path,
    *,
    overwrite: bool = False,
    max_workers: int = 8,
    show_progress: bool = True,
    progress: ProgressCallback | None = None,
    keep_prefix: bool = False,
) -> TransferReport:
    """Download the blobs below ``remote_folder`` into ``local_folder``, keeping their relative paths.

    With ``keep_prefix`` (hi-ml's layout) each blob keeps its whole name below
    ``local_folder`` (``foo/bar/1.txt`` for the prefix ``foo/bar``), and a
    prefix that names one blob downloads that file.
    """
    started = time.monotonic()
    prefix = _clean_prefix(remote_folder)
    target = Path(local_folder).expanduser()
    blobs = [b for b in container.list_blobs(name_starts_with=prefix or None) if not b.name.endswith("/")]
    if keep_prefix and not blobs and prefix:
        single = prefix.rstrip("/")
        blobs = [b for b in container.list_blobs(name_starts_with=single) if b.name == single]
    if not blobs:
        raise HimlError(f"download: nothing found at {container.container_name}/{prefix}")
    report = TransferReport("download")
    jobs: list[tuple[str, Callable[[], int]]] = []

    for blob in blobs:
        rel = blob.name if keep_prefix else blob.name[len(prefix) :]
        if ".." in PurePosixPath(rel).parts:
            raise HimlError(f"download: blob name {blob.name!r} would land outside {str(target)!r}")
        local = target / rel
        if local.is_file():
            if not overwrite:
                report.skipped.append(rel)
                continue
            expected = _blob_md5(blob)
            if expected is not None and file_md5(local) == expected:
                report.skipped.append(rel)
                continue
        jobs.append((rel, lambda b=blob, p=local: download_blob(container, b, p)))  # type: ignore[misc]
    printer = _Printer("download", show_progress, progress)
    _run_parallel(jobs, report, printer, max_workers)
    return _finish(report, f"of {container.container_name}/{prefix} to {str(target)!r}", started)


# --- the public functions -----------------------------------------------------------


def _container(workspace: Workspace | None, datastore: str, config_file: str | Path | None, retries: int) -> Any:
    from himl_azure_v2.workspace import Workspace

    ws = workspace or Workspace.from_config(config_file)
    return ws.container(datastore, retries=retries)


def upload_to_datastore(
    local_folder: str | Path,
    remote_folder: str = "",
    *,
    datastore: str = "",
    overwrite: bool = False,
    max_workers: int = 8,
    show_progress: bool = True,
    config_file: str | Path | None = None,
    workspace: Workspace | None = None,
    retries: int = 3,
    progress: ProgressCallback | None = None,
) -> TransferReport:
    """Upload a local folder (or file) to ``remote_folder`` in a datastore.

    Args:
        local_folder: the folder whose files are uploaded (or a single file).
        remote_folder: the folder in the datastore; empty means its top.
        datastore: the datastore's name; empty means ``workspaceblobstore``.
        overwrite: replace blobs that exist with different content (default: keep them).
        max_workers: files transferred at once.
        show_progress: print progress lines to stderr.
        config_file: the workspace's ``config.json`` (default: searched upwards from here).
        workspace: an already connected workspace, instead of ``config_file``.
        retries: retries of each failed request.
        progress: called after each file.

    Returns:
        What was transferred and skipped.

    Raises:
        HimlError: files failed (the rest are kept: rerun to finish).
    """
    container = _container(workspace, datastore, config_file, retries)
    report = upload_folder(
        container,
        local_folder,
        remote_folder,
        overwrite=overwrite,
        max_workers=max_workers,
        show_progress=show_progress,
        progress=progress,
    )
    if show_progress:
        print(f"himl: {report.summary()}", file=sys.stderr)
    return report


def download_from_datastore(
    remote_folder: str,
    local_folder: str | Path,
    *,
    datastore: str = "",
    overwrite: bool = False,
    max_workers: int = 8,
    show_progress: bool = True,
    config_file: str | Path | None = None,
    workspace: Workspace | None = None,
    retries: int = 3,
    progress: ProgressCallback | None = None,
    keep_prefix: bool = False,
) -> TransferReport:
    """Download ``remote_folder`` of a datastore into a local folder.

    Arguments as for :func:`upload_to_datastore`; ``overwrite`` replaces local
    files whose MD5 differs from the blob's; ``keep_prefix`` keeps hi-ml's
    layout (see :func:`download_folder`).
    """
    container = _container(workspace, datastore, config_file, retries)
    report = download_folder(
        container,
        remote_folder,
        local_folder,
        overwrite=overwrite,
        max_workers=max_workers,
        show_progress=show_progress,
        progress=progress,
        keep_prefix=keep_prefix,
    )
    if show_progress:
        print(f"himl: {report.summary()}", file=sys.stderr)
    return report
