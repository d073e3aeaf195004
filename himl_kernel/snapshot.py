"""The code snapshot a job carries: a root folder and the rules for what to leave out.

Rules come from ``.amlignore`` in the root (AzureML's own file), or, when there
is none, from ``.gitignore``; both use gitignore syntax. ``.git`` is always
left out. Remote backends upload :meth:`Snapshot.files`; the local backend runs
in place and shows the snapshot in ``--dry-run``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from himl_kernel.errors import HimlError

IGNORE_FILES = (".amlignore", ".gitignore")
ALWAYS_IGNORED = (".git/",)


@dataclass
class Snapshot:
    """A snapshot root with its ignore rules.

    Attributes:
        root: the folder whose contents the job receives.
        extra_ignores: more gitignore-style patterns, on top of the ignore file.
    """

    root: Path = field(default_factory=Path.cwd)
    extra_ignores: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        if not self.root.is_dir():
            raise HimlError(f"snapshot root {str(self.root)!r} is not a folder")

    @property
    def ignore_file(self) -> Path | None:
        """The file the rules come from: ``.amlignore``, else ``.gitignore``, else none."""
        for name in IGNORE_FILES:
            candidate = self.root / name
            if candidate.is_file():
                return candidate
        return None

    def patterns(self) -> list[str]:
        lines = list(ALWAYS_IGNORED)
        source = self.ignore_file
        if source is not None:
            lines += source.read_text(encoding="utf-8").splitlines()
        return lines + list(self.extra_ignores)

    def files(self) -> Iterator[Path]:
        """Files of the snapshot, relative to the root, in sorted order."""
        import pathspec

        spec = pathspec.GitIgnoreSpec.from_lines(self.patterns())
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel_dir = Path(dirpath).relative_to(self.root)
            kept_dirs = []
            for d in sorted(dirnames):
                rel = (rel_dir / d).as_posix() + "/"
                if not spec.match_file(rel):
                    kept_dirs.append(d)
            dirnames[:] = kept_dirs
            for f in sorted(filenames):
                rel_file = (rel_dir / f).as_posix()
                if not spec.match_file(rel_file):
                    yield Path(rel_file)

    def size(self) -> tuple[int, int]:
        """Number of files and their total size in bytes."""
        count = total = 0
        for rel in self.files():
            count += 1
            total += (self.root / rel).stat().st_size
        return count, total

    def to_dict(self) -> dict[str, Any]:
        source = self.ignore_file
        return {
            "root": str(self.root),
            "ignore_file": source.name if source else None,
            "extra_ignores": list(self.extra_ignores),
        }
