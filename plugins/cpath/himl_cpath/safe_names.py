"""File names made from table values (slide ids), and the check that what is written stays inside its folder.

A slide id comes from a user's table and may be anything: ``../../victim``,
``.``, an absolute path, a name with separators. :func:`file_stem` turns any
id into one path component: an id made only of letters, digits, ``-``, ``_``
and ``.`` (and not ``.`` or ``..``, nor starting with a dot) is kept as it is,
so that ordinary layouts keep their names; any other id has its other
characters replaced by ``_`` and a short digest of the whole id appended, so
that two different ids never share a name. :func:`check_distinct` refuses a
table whose ids still meet on a case-insensitive file system.

:func:`inside` is the last guard before any write or delete: the path, once
resolved, must lie in the given root.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

from himl_kernel.errors import HimlError

_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
#: Longest name kept as it is; longer ids are cut and given a digest (file systems allow 255 bytes).
MAX_STEM = 120


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:10]


def file_stem(slide_id: str) -> str:
    """One safe path component for ``slide_id``: the id itself when it is plain, else a cleaned id and a digest."""
    if not slide_id:
        raise HimlError("a slide id is empty")
    if _PLAIN.fullmatch(slide_id) and len(slide_id) <= MAX_STEM:
        return slide_id
    cleaned = _UNSAFE.sub("_", slide_id).strip("._") or "slide"
    return f"{cleaned[:MAX_STEM]}-{_digest(slide_id)}"


def check_distinct(ids: Iterable[str], where: str) -> None:
    """Refuse, in one line naming both rows, two ids whose file names meet (ignoring case, as macOS and Windows do)."""
    seen: dict[str, tuple[int, str]] = {}
    for row, slide_id in enumerate(ids, start=1):
        key = file_stem(slide_id).casefold()
        if key in seen:
            first_row, first_id = seen[key]
            raise HimlError(
                f"{where}: slide ids {first_id!r} (row {first_row}) and {slide_id!r} (row {row}) "
                "would share the file name "
                f"{file_stem(slide_id)!r}; give them ids that differ in more than letter case"
            )
        seen[key] = (row, slide_id)


def inside(root: Path, path: Path) -> Path:
    """``path``, after checking that it resolves to a place strictly inside ``root``; else a one-line error."""
    base = root.resolve()
    target = path.resolve()
    if target == base or base not in target.parents:
        raise HimlError(f"refusing to touch {path}: it lies outside {root}")
    return path
