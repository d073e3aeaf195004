"""The kernel's checkpoint sources: http(s) URLs, run outputs, local paths.

The built-in plugin :mod:`himl_kernel.builtin.checkpoints` registers them by
import path, so this module is imported only when a reference is resolved.
Each class follows :class:`~himl_kernel.contracts.CheckpointSource`: it returns
None for a reference that is not its form, so the next source is asked.

Downloads land in ``<cache_dir>/url/<sha256 of the URL>/<file name>``. A file
appears there only complete: it is written to a temporary file in the same
folder, flushed to disk, then renamed over the final name. A lock file keeps
two processes from downloading the same URL at once; the second one finds the
first one's file.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING
from urllib.parse import unquote, urldefrag, urlsplit, urlunsplit

from himl_kernel.atomic import atomic_write, atomic_write_bytes
from himl_kernel.checkpoints import parse_run_reference, url_scheme
from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from himl_kernel.plugins import PluginHost

URL_SCHEMES = ("http", "https")
DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 1 << 20
_LOCK = ".lock"
_DIGEST = ".sha256"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


# --- local paths ---------------------------------------------------------------


class PathSource:
    """A checkpoint file on this machine."""

    def resolve(self, reference: str, *, cache_dir: Path, host: PluginHost) -> Path | None:
        """The file itself (absolute); None for URLs and for run references that are not local files."""
        if url_scheme(reference) is not None:
            return None
        path = Path(reference).expanduser()
        if path.is_file():
            return path.resolve()
        if path.is_dir():
            raise HimlError(f"checkpoint {reference!r} is a folder: give the checkpoint file inside it")
        if parse_run_reference(reference) is not None:
            return None  # "RUN_ID:path" that no run source knew: resolve_checkpoint explains
        where = "" if path.is_absolute() else f" (looked for {path.resolve()})"
        raise HimlError(f"checkpoint file {reference!r} does not exist{where}")


# --- run outputs -----------------------------------------------------------------


class RunSource:
    """A file in the outputs of a run in the run store: ``RUN_ID:path/in/outputs``."""

    def resolve(self, reference: str, *, cache_dir: Path, host: PluginHost) -> Path | None:
        """The run's output file; None when the reference is not ``RUN_ID:path`` or the run is unknown here."""
        parsed = parse_run_reference(reference)
        if parsed is None:
            return None
        run_id, path = parsed
        path = path.replace("\\", "/")
        if ".." in PurePosixPath(path).parts:
            raise HimlError(f"checkpoint reference {reference!r} must name a file inside the run's outputs, not '..'")

        from himl_kernel.runstore import OUTPUTS, RunStore

        store = RunStore()
        if store.is_default_store and not (store.home / "mlflow.db").is_file():
            return None  # no local store yet, so no local runs: do not create one just to look
        _ = store.client  # a store that cannot be opened is an error of its own, not an unknown run
        try:
            run = store.get(run_id)
        except HimlError:
            return None  # perhaps another source's run (a cloud workspace)
        artifact = f"{OUTPUTS}/{path}"
        try:
            if run.artifact_folder is not None:
                local = store.artifact(run_id, artifact)
            else:
                local = store.artifact(run_id, artifact, dest=cache_dir / "runs" / run_id)
        except HimlError:
            raise HimlError(f"run {run_id} has no file {artifact!r}") from None
        if not local.is_file():
            raise HimlError(f"run {run_id} has no file {artifact!r}: it is a folder")
        return local


# --- http(s) URLs ----------------------------------------------------------------


class UrlSource:
    """An http(s) URL, downloaded once into the cache; ``#sha256=<hex>`` pins its content."""

    def resolve(self, reference: str, *, cache_dir: Path, host: PluginHost) -> Path | None:
        """The cached download of the URL; None for references that are not http(s) URLs."""
        if url_scheme(reference) not in URL_SCHEMES:
            return None
        return fetch_url(reference, cache_dir / "url")


def fetch_url(url: str, cache_dir: Path) -> Path:
    """Download ``url`` into ``cache_dir`` unless it is there already; return the file.

    Args:
        url: an http(s) URL; a fragment ``#sha256=<hex>`` is the digest the
            content must have. The fragment is not part of the cache key.
        cache_dir: the folder holding one sub-folder per URL.

    Raises:
        HimlError: the server answered with an error, the connection broke,
            or the content does not have the expected digest. Nothing is
            left in the cache in those cases.
    """
    address, expected = _split_digest(url)
    shown = display_url(address)
    folder = cache_dir / hashlib.sha256(address.encode("utf-8")).hexdigest()
    target = folder / _file_name(address)
    if expected is None and target.is_file():
        return target  # files appear there only complete: no lock needed to read one
    folder.mkdir(parents=True, exist_ok=True)
    with _exclusive(folder / _LOCK):
        if target.is_file() and (expected is None or _cached_digest(target) == expected):
            return target
        _download(address, target, expected, shown)
    return target


def display_url(url: str) -> str:
    """``url`` without credentials: user info and query (often a token) are masked."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", ""))


def _split_digest(url: str) -> tuple[str, str | None]:
    address, fragment = urldefrag(url.strip())
    key, sep, value = fragment.partition("=")
    if not sep or key.strip().lower() != "sha256":
        return address, None
    value = value.strip()
    if not _HEX64.fullmatch(value):
        raise HimlError(
            f"checkpoint URL {display_url(address)}: '#sha256=' must be followed by 64 hex digits, got {value!r}"
        )
    return address, value.lower()


def _file_name(url: str) -> str:
    name = unquote(PurePosixPath(urlsplit(url).path).name)
    name = name.replace("\\", "_").replace("/", "_").lstrip(".")  # a leading dot marks our own files
    return name or "checkpoint"


def _cached_digest(target: Path) -> str:
    record = target.parent / _DIGEST
    try:
        recorded = record.read_text(encoding="ascii").split()[0]
    except (OSError, IndexError, UnicodeDecodeError):
        recorded = ""
    if _HEX64.fullmatch(recorded):
        return recorded.lower()
    digest = hashlib.sha256()
    with target.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (POSIX; elsewhere the atomic rename alone protects the cache)."""
    with open(lock_path, "a+b") as handle:
        if sys.platform != "win32":
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        else:
            yield


def _download(url: str, target: Path, expected: str | None, shown: str) -> None:
    import http.client
    import urllib.error
    import urllib.request

    from himl_kernel import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"himl/{__version__}"})
    digest = hashlib.sha256()

    def fetch(out: IO[bytes]) -> None:  # raising here leaves no file behind (atomic_write removes it)
        received = 0
        try:
            with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
                length = response.headers.get("Content-Length")
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
        except urllib.error.HTTPError as exc:
            raise HimlError(f"cannot download checkpoint {shown}: HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            raise HimlError(f"cannot download checkpoint {shown}: {exc.reason}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise HimlError(f"cannot download checkpoint {shown}: {type(exc).__name__}: {exc}") from None
        if length is not None and length.strip().isdigit() and received != int(length):
            raise HimlError(
                f"cannot download checkpoint {shown}: the connection closed after {received} of {length} bytes"
            )
        actual = digest.hexdigest()
        if expected is not None and actual != expected:
            raise HimlError(f"checkpoint {shown} does not have the expected sha256: expected {expected}, got {actual}")

    atomic_write(target, fetch)
    atomic_write_bytes(target.parent / _DIGEST, f"{digest.hexdigest()}  {target.name}\n".encode())
