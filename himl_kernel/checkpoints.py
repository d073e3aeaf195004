"""Checkpoint references, resolved to local files.

A checkpoint reference is what a user writes after ``--src_checkpoint``:

- a local path (``~`` is expanded): ``outputs/checkpoints/last.ckpt``;
- an http(s) URL, optionally pinned by its digest:
  ``https://host/model.ckpt#sha256=<hex>``; the file is downloaded once into
  the cache;
- ``RUN_ID:path/in/outputs``: a file that run wrote to its outputs folder,
  ``3f2a...:checkpoints/last.ckpt``; hi-ml's forms of it are understood too
  (:func:`hi_ml_run_candidates`): ``RUN_ID`` alone is the run's last
  checkpoint, ``RUN_ID:best.ckpt`` a file of its checkpoint folder, and
  ``RUN_ID:outputs/checkpoints/x.ckpt`` the same as ``RUN_ID:checkpoints/x.ckpt``.

:func:`resolve_checkpoint` checks the form, then asks the registered
checkpoint sources (hook ``himl_register_checkpoint_sources``) in priority
order; the first that returns a path wins. Plugins may add forms (a cloud run
id, another URL scheme: list it in the entry's ``schemes`` option).
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from himl_kernel.contracts import CheckpointSource
    from himl_kernel.plugins import PluginHost

ENV_CACHE = "HIML_CACHE"

#: URL schemes every installation understands; a source may add more with
#: ``registry.add(..., schemes=("s3",))``.
BUILTIN_SCHEMES = frozenset({"http", "https"})

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

#: Where a run keeps its checkpoints, inside its outputs (hi-ml's ``outputs/checkpoints``).
RUN_CHECKPOINT_FOLDER = "checkpoints"
#: The checkpoint a bare ``RUN_ID`` names: the run's last one.
RUN_LAST_CHECKPOINT = "last.ckpt"
#: Endings that make a bare word a file name, never a run id.
_FILE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".safetensors", ".pkl", ".h5")
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", re.DOTALL)


def default_cache_dir() -> Path:
    """Where downloaded checkpoints are kept: ``$HIML_CACHE/checkpoints`` (default ``~/.cache/himl``)."""
    root = os.environ.get(ENV_CACHE, "").strip()
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "himl"
    return base / "checkpoints"


def url_scheme(reference: str) -> str | None:
    """The lower-cased scheme of a ``scheme://...`` reference, else None."""
    match = _URL.fullmatch(reference)
    return match.group(1).lower() if match else None


def parse_run_reference(reference: str | Path) -> tuple[str, str] | None:
    """Split ``RUN_ID:path/in/outputs`` into ``(run_id, path)``; None for any other form.

    The run id starts with a letter or digit and holds letters, digits, ``_``,
    ``.`` and ``-``. A single letter is not a run id, so ``C:\\models\\a.ckpt``
    stays a Windows path. URLs, and references with an empty path, give None.
    """
    if isinstance(reference, Path):
        return None
    text = reference.strip()
    if url_scheme(text) is not None:
        return None
    run_id, sep, path = text.partition(":")
    if not sep or len(run_id) < 2 or not _RUN_ID.fullmatch(run_id):
        return None
    path = path.strip().strip("/")
    if not path:
        return None
    return run_id, path


def is_bare_run_id(reference: str) -> bool:
    """True when ``reference`` can only be a run id: no folder, no scheme, no file ending, no file of that name here."""
    text = reference.strip()
    if len(text) < 2 or not _RUN_ID.fullmatch(text) or text.lower().endswith(_FILE_SUFFIXES):
        return False
    return not Path(text).expanduser().exists()


def hi_ml_run_candidates(reference: str) -> list[str]:
    """The ``RUN_ID:path/in/outputs`` references that ``reference`` may mean, most likely first (hi-ml's rules).

    - ``RUN_ID`` alone: ``RUN_ID:checkpoints/last.ckpt``, the run's last checkpoint;
    - ``RUN_ID:name.ckpt`` (no folder): ``RUN_ID:checkpoints/name.ckpt`` (hi-ml's
      default folder), then ``RUN_ID:name.ckpt`` (a file at the top of the outputs);
    - ``RUN_ID:outputs/x/y.ckpt``: ``RUN_ID:x/y.ckpt`` (hi-ml counts from the run's
      top folder, himl from its outputs);
    - anything else: the reference itself.
    """
    text = reference.strip()
    if is_bare_run_id(text):
        return [f"{text}:{RUN_CHECKPOINT_FOLDER}/{RUN_LAST_CHECKPOINT}"]
    parsed = parse_run_reference(text)
    if parsed is None:
        return [text]
    run_id, path = parsed
    parts = PurePosixPath(path.replace("\\", "/")).parts
    if len(parts) > 1 and parts[0] == "outputs":
        return [f"{run_id}:{'/'.join(parts[1:])}"]
    if len(parts) == 1:
        return [f"{run_id}:{RUN_CHECKPOINT_FOLDER}/{parts[0]}", f"{run_id}:{parts[0]}"]
    return [text]


def _malformed(reference: str) -> HimlError:
    return HimlError(
        f"malformed checkpoint reference {reference!r}: expected a file path, an http(s) URL, or RUN_ID:path/in/outputs"
    )


def validate_reference(reference: str | Path, schemes: frozenset[str] = BUILTIN_SCHEMES) -> str:
    """The reference as text (surrounding blanks removed), or :class:`HimlError` when it has no known form.

    Args:
        reference: what the user wrote.
        schemes: URL schemes that some source handles.
    """
    if isinstance(reference, Path):
        return str(reference)
    if not isinstance(reference, str) or not reference.strip():
        raise _malformed(str(reference))
    text = reference.strip()
    scheme = url_scheme(text)
    if scheme is not None:
        if scheme not in schemes or not urlsplit(text).netloc:
            raise _malformed(reference)
        return text
    head, sep, tail = text.partition(":")
    if sep:
        if not head.strip():
            raise _malformed(reference)  # ":x"
        if _RUN_ID.fullmatch(head) and not tail.strip().strip("/"):
            raise _malformed(reference)  # "abc:"
    return text


def _source(entry_target: object) -> CheckpointSource:
    obj = entry_target() if isinstance(entry_target, type) else entry_target
    return obj  # type: ignore[return-value]


def _known_schemes(host: PluginHost) -> frozenset[str]:
    schemes = set(BUILTIN_SCHEMES)
    for entry in host.checkpoint_sources:
        extra = entry.options.get("schemes", ())
        schemes.update(str(s).lower() for s in ([extra] if isinstance(extra, str) else extra))
    return frozenset(schemes)


def resolve_checkpoint(
    reference: str | Path,
    *,
    host: PluginHost | None = None,
    cache_dir: Path | None = None,
) -> Path:
    """The local file a checkpoint reference points to, downloading it when needed.

    Args:
        reference: a local path, an http(s) URL (``#sha256=<hex>`` pins its
            content), ``RUN_ID:path/in/outputs``, or one of hi-ml's forms
            (``RUN_ID``, ``RUN_ID:best.ckpt``, ``RUN_ID:outputs/checkpoints/x.ckpt``).
        host: the plugin host whose checkpoint sources are asked; default: one
            built with :func:`himl_kernel.plugins.build_host`.
        cache_dir: where downloads are kept; default :func:`default_cache_dir`.

    Returns:
        The path of an existing file.

    Raises:
        HimlError: the reference is malformed, names nothing that exists, or
            could not be fetched.
    """
    if host is None:
        from himl_kernel.plugins import build_host

        host = build_host()
    text = validate_reference(reference, _known_schemes(host))
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    entries = host.checkpoint_sources.by_priority()
    candidates = hi_ml_run_candidates(text)
    first_error: HimlError | None = None
    for candidate in candidates:
        try:
            for entry in entries:
                source = _source(entry.load())
                found = source.resolve(candidate, cache_dir=cache, host=host)
                if found is not None:
                    return Path(found)
        except HimlError as exc:  # e.g. "run X has no file": the next reading may name a file it has
            if len(candidates) == 1:
                raise
            first_error = first_error or exc
    if first_error is not None:
        raise first_error

    if is_bare_run_id(text):
        from himl_kernel.runstore import RunStore

        raise HimlError(
            f"checkpoint {text!r} is not a file here, and no run of that id (whose last checkpoint it would "
            f"name) is in the run store {RunStore().display_uri} or known to an installed checkpoint source"
        )
    run = parse_run_reference(candidates[0])
    if run is not None:
        from himl_kernel.runstore import RunStore

        raise HimlError(
            f"unknown run id {run[0]!r} in checkpoint reference {text!r}: it is not in the run store "
            f"{RunStore().tracking_uri} and no installed checkpoint source knows it"
        )
    tried = ", ".join(e.name for e in entries) or "none installed"
    broken = "".join(f"; {info.describe()}" for info in host.broken)
    raise HimlError(f"no checkpoint source could resolve {text!r} (sources tried: {tried}){broken}")


#: The folder of ``download_dir`` that :meth:`CheckpointParser.get_or_download_checkpoint` downloads into (hi-ml's).
MODEL_WEIGHTS_DIR_NAME = "pretrained_models"

_FORMATS = (
    "a local file, an http(s) URL, RUN_ID (the run's last checkpoint), RUN_ID:name.ckpt (in the run's "
    "checkpoints folder) or RUN_ID:path/to/file.ckpt"
)


class CheckpointParser(str):
    """A checkpoint reference as a value: hi-ml's ``CheckpointParser``, usable as a container field's type.

    It is the reference text itself (a ``str``), checked for its form when
    made; an empty one means "no checkpoint". As a container field
    (``ssl_checkpoint: CheckpointParser = CheckpointParser()``) it is one
    command-line option holding the reference, and reads back from
    ``config.yaml`` as written::

        parser = CheckpointParser("3f2a9c:best.ckpt")
        parser.is_aml_run_id          # True
        path = parser.get_or_download_checkpoint("outputs/checkpoints")

    Raises:
        ValueError: the text has none of the known forms (hi-ml's error type,
            so that pydantic reports it against the field).
    """

    def __new__(cls, checkpoint: str | Path = "") -> CheckpointParser:
        text = str(checkpoint).strip()
        if text:
            try:
                validate_reference(text)
            except HimlError:
                raise ValueError(f"invalid checkpoint {text!r}: expected {_FORMATS}") from None
        return super().__new__(cls, text)

    @property
    def checkpoint(self) -> str:
        """The reference text."""
        return str(self)

    @property
    def is_local_file(self) -> bool:
        """True when the reference is a file on this machine."""
        return bool(self) and url_scheme(self) is None and Path(self).expanduser().is_file()

    @property
    def is_url(self) -> bool:
        """True for an http(s) URL."""
        return url_scheme(self) in BUILTIN_SCHEMES

    @property
    def is_aml_run_id(self) -> bool:
        """True for a run reference (``RUN_ID`` or ``RUN_ID:path``) of a local or an AzureML run."""
        if not self or self.is_local_file or url_scheme(self) is not None:
            return False
        return is_bare_run_id(self) or parse_run_reference(str(self)) is not None

    @property
    def is_valid(self) -> bool:
        """True for a non-empty reference of one of the three kinds."""
        return self.is_local_file or self.is_url or self.is_aml_run_id

    def get_or_download_checkpoint(self, download_dir: str | Path | None = None) -> Path:
        """The checkpoint as a local file (see :func:`resolve_checkpoint`).

        Args:
            download_dir: downloads go to its ``pretrained_models`` folder
                (hi-ml's layout); default: the checkpoint cache.
        """
        if not self:
            raise HimlError("CheckpointParser: no checkpoint was given")
        cache = Path(download_dir) / MODEL_WEIGHTS_DIR_NAME if download_dir is not None else None
        return resolve_checkpoint(str(self), cache_dir=cache)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(
            cls,
            core_schema.str_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )
