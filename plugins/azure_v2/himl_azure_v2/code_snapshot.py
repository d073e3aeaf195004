"""The code folder an AzureML job receives: the snapshot's files, staged and size-checked.

The kernel's :class:`~himl_kernel.snapshot.Snapshot` says which files belong
(``.amlignore``, else ``.gitignore``; ``.git`` never). On top of those rules this
plugin always leaves out files that commonly hold secrets or are local clutter
(``.env`` files, virtual environments, caches, himl's own cache and run store).

The snapshot is staged as a folder of symbolic links (the SDK follows them when
it uploads): a folder whose whole content belongs to the snapshot is one link,
other folders are recreated with a link per file they keep. The staged folder
is named after the kept files' paths, sizes and modification times, so an
unchanged tree is staged once, and the folder AzureML uploads holds exactly the
snapshot, whatever rules the SDK itself would apply.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from himl_kernel.errors import HimlError
from himl_kernel.snapshot import Snapshot

#: Left out of every AzureML snapshot, whatever the ignore file says.
ALWAYS_LEFT_OUT = (
    ".env",
    ".env.*",
    ".venv/",
    "__pycache__/",
    "himl_runs/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".amltmp/",
)
#: AzureML refuses code snapshots above this size.
SNAPSHOT_LIMIT_BYTES = 300 * 1024 * 1024
_DONE = ".done"


@dataclass(frozen=True)
class StagedSnapshot:
    """A staged code folder and what it holds."""

    folder: Path
    files: int
    bytes: int
    rules: str

    def describe(self) -> str:
        return f"code snapshot: {self.files} files, {self.bytes / 1e6:.1f} MB ({self.rules})"


@dataclass
class _Folder:
    """One folder of the tree: the files it keeps, its kept subfolders, whether it keeps everything."""

    rel: str
    files: list[tuple[str, int, int]] = field(default_factory=list)  # (relative path, size, mtime_ns)
    folders: list[_Folder] = field(default_factory=list)
    complete: bool = True


def _matcher(lines: list[str]) -> Callable[[str], bool]:
    """Whether a relative path (folders end in ``/``) is left out, by gitignore rules.

    Without negated patterns the rules are joined into one regular expression;
    with them, pathspec decides (last matching rule wins).
    """
    import pathspec

    spec = pathspec.GitIgnoreSpec.from_lines(lines)
    patterns = [p for p in spec.patterns if getattr(p, "include", None) is not None]
    regexes = [getattr(p, "regex", None) for p in patterns]
    if all(p.include for p in patterns) and all(r is not None for r in regexes):
        sources = [re.sub(r"\(\?P<\w+>", "(?:", r.pattern) for r in regexes if r is not None]
        if not sources:
            return lambda _path: False
        combined = re.compile("|".join(f"(?:{s})" for s in sources))
        return lambda path: combined.match(path) is not None
    return lambda path: bool(spec.match_file(path))


def _scan(root: Path, rel: str, excluded: Callable[[str], bool]) -> _Folder:
    folder = _Folder(rel)
    with os.scandir(root / rel if rel else root) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            child = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir():
                if excluded(child + "/"):
                    folder.complete = False
                    continue
                sub = _scan(root, child, excluded)
                folder.complete = folder.complete and sub.complete and not entry.is_symlink()
                if sub.files or sub.folders:
                    folder.folders.append(sub)
            elif entry.is_file():
                if excluded(child):
                    folder.complete = False
                    continue
                st = entry.stat()
                folder.files.append((child, st.st_size, st.st_mtime_ns))
            else:
                folder.complete = False  # sockets, broken links: never uploaded
    return folder


def _all_files(folder: _Folder) -> list[tuple[str, int, int]]:
    found = list(folder.files)
    for sub in folder.folders:
        found += _all_files(sub)
    return found


def _himl_folders_inside(root: Path) -> list[str]:
    """Ignore patterns for himl's own cache and run store when they lie inside the snapshot root."""
    from himl_kernel.dataset_prep import cache_dir
    from himl_kernel.runstore import himl_home

    patterns = []
    for folder in (cache_dir(), himl_home()):
        try:
            rel = folder.resolve().relative_to(root)
        except ValueError:
            continue
        if rel.parts:
            patterns.append("/" + rel.as_posix() + "/")
    return patterns


def scan_snapshot(snapshot: Snapshot) -> _Folder:
    """The snapshot's tree, with this plugin's extra rules applied."""
    extra = [*snapshot.extra_ignores, *ALWAYS_LEFT_OUT, *_himl_folders_inside(snapshot.root)]
    return _scan(snapshot.root, "", _matcher(Snapshot(snapshot.root, extra).patterns()))


def snapshot_files(snapshot: Snapshot) -> list[str]:
    """The relative paths of the files the job receives, sorted."""
    return sorted(rel for rel, _, _ in _all_files(scan_snapshot(snapshot)))


def check_size(snapshot: Snapshot, files: list[tuple[str, int, int]], limit: int) -> int:
    total = sum(size for _, size, _ in files)
    if total > limit:
        largest = sorted(files, key=lambda item: -item[1])[:3]
        names = ", ".join(f"{rel} ({size / 1e6:.1f} MB)" for rel, size, _ in largest)
        source = snapshot.ignore_file.name if snapshot.ignore_file else ".amlignore"
        raise HimlError(
            f"the code snapshot of {str(snapshot.root)!r} is {total / 1e6:.1f} MB in {len(files)} files, over "
            f"AzureML's limit of {limit / 1e6:.0f} MB; largest: {names}; leave such files out in {source}"
        )
    return total


def _link(root: Path, folder: _Folder, target: Path) -> None:
    for rel, _, _ in folder.files:
        os.symlink(root / rel, target / rel)
    for sub in folder.folders:
        if sub.complete:
            os.symlink(root / sub.rel, target / sub.rel, target_is_directory=True)
        else:
            (target / sub.rel).mkdir()
            _link(root, sub, target)


def stage_snapshot(snapshot: Snapshot, cache: Path, *, limit: int = SNAPSHOT_LIMIT_BYTES) -> StagedSnapshot:
    """Check the snapshot's size, then stage it under ``cache`` (reused while the files are unchanged)."""
    tree = scan_snapshot(snapshot)
    files = _all_files(tree)
    total = check_size(snapshot, files, limit)
    digest = hashlib.sha256(str(snapshot.root).encode())
    for rel, size, mtime in sorted(files):
        digest.update(f"{rel}\0{size}\0{mtime}\n".encode())
    key = digest.hexdigest()[:20]
    folder, done = cache / key, cache / f"{key}{_DONE}"
    source = snapshot.ignore_file
    staged = StagedSnapshot(folder, len(files), total, f"rules from {source.name}" if source else "no ignore file")
    if done.is_file() and folder.is_dir():
        return staged
    cache.mkdir(parents=True, exist_ok=True)
    if folder.exists():  # left half-made by an interrupted run
        shutil.rmtree(folder, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=".staging-", dir=cache))
    try:
        _link(snapshot.root, tree, work)
        try:
            work.rename(folder)
        except OSError:  # staged meanwhile by another process
            if not done.is_file():
                raise
        done.write_text(str(snapshot.root), encoding="utf-8")
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return staged


def announce(staged: StagedSnapshot) -> None:
    print(f"himl: {staged.describe()}", file=sys.stderr)
