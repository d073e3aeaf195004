"""Checkpoint references, resolved to local files.

A checkpoint reference is what a user writes after ``--src_checkpoint``:

- a local path (``~`` is expanded): ``outputs/checkpoints/last.ckpt``;
- an http(s) URL, optionally pinned by its digest:
  ``https://host/model.ckpt#sha256=<hex>``; the file is downloaded once into
  the cache;
- ``RUN_ID:path/in/outputs``: a file that run wrote to its outputs folder,
  ``3f2a...:checkpoints/last.ckpt``.

:func:`resolve_checkpoint` checks the form, then asks the registered
checkpoint sources (hook ``himl_register_checkpoint_sources``) in priority
order; the first that returns a path wins. Plugins may add forms (a cloud run
id, another URL scheme: list it in the entry's ``schemes`` option).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING
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
            content), or ``RUN_ID:path/in/outputs``.
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
    for entry in entries:
        source = _source(entry.load())
        found = source.resolve(text, cache_dir=cache, host=host)
        if found is not None:
            return Path(found)

    run = parse_run_reference(text)
    if run is not None:
        from himl_kernel.runstore import RunStore

        raise HimlError(
            f"unknown run id {run[0]!r} in checkpoint reference {text!r}: it is not in the run store "
            f"{RunStore().tracking_uri} and no installed checkpoint source knows it"
        )
    tried = ", ".join(e.name for e in entries) or "none installed"
    broken = "".join(f"; {info.describe()}" for info in host.broken)
    raise HimlError(f"no checkpoint source could resolve {text!r} (sources tried: {tried}){broken}")
