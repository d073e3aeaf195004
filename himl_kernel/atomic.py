"""Files that a killed process never leaves half-written.

:func:`atomic_write` hands a writer a temporary file in the target's own
folder; when the writer returns, the bytes are flushed to disk (fsync), the
file is renamed over the target (``os.replace``, atomic on one file system),
and the folder is synced so the rename itself survives a power cut. Readers
see the old file or the whole new one. A process killed mid-write leaves at
worst a hidden ``.NAME.XXXX.partial`` file, which :func:`remove_partial_files`
deletes on the next start::

    from himl_kernel.atomic import atomic_write

    atomic_write(folder / "state.pt", lambda handle: torch.save(state, handle))
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

#: The suffix of the temporary files :func:`atomic_write` writes into.
PARTIAL_SUFFIX = ".partial"


def fsync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (no-op where folders cannot be opened or synced)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(target: Path, write: Callable[[IO[bytes]], object], *, mode: int = 0o644) -> Path:
    """Write ``target`` through ``write(handle)`` so that readers see the old file or the whole new one.

    Args:
        target: the file to (re)place; its folder is created if need be.
        write: called with a binary file open for writing; its return value is ignored.
        mode: the new file's permission bits (the temporary file starts private).

    Returns ``target``. If ``write`` raises, the temporary file is removed and
    ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=PARTIAL_SUFFIX, dir=target.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    fsync_folder(target.parent)
    return target


def atomic_write_bytes(target: Path, data: bytes, *, mode: int = 0o644) -> Path:
    """:func:`atomic_write` of ``data``."""
    return atomic_write(target, lambda handle: handle.write(data), mode=mode)


def atomic_write_text(target: Path, text: str, *, encoding: str = "utf-8", mode: int = 0o644) -> Path:
    """:func:`atomic_write` of ``text``, encoded."""
    return atomic_write_bytes(target, text.encode(encoding), mode=mode)


def move_into_place(source: Path, target: Path) -> None:
    """Rename the finished file ``source`` over ``target`` (same folder) and make the rename durable."""
    os.replace(source, target)
    fsync_folder(Path(target).parent)


def remove_partial_files(folder: Path, suffixes: tuple[str, ...] = (PARTIAL_SUFFIX,)) -> list[Path]:
    """Delete the hidden temporary files (``.*SUFFIX``) a killed writer left in ``folder``; return them."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for suffix in suffixes:
        for stray in folder.glob(f".*{suffix}"):
            with contextlib.suppress(OSError):
                stray.unlink()
                removed.append(stray)
    return removed
