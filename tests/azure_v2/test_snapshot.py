"""The staged code folder holds exactly the kernel's snapshot, minus secrets and clutter."""

from __future__ import annotations

from pathlib import Path

import pytest
from himl_azure_v2.code_snapshot import ALWAYS_LEFT_OUT, snapshot_files, stage_snapshot

from himl_kernel.snapshot import Snapshot
from tests.azure_v2.conftest import staged_files

TREE = [
    "train.py", "src/a.py", "src/deep/b.py", "src/deep/c.log", "data/x.bin", "docs/keep/readme.md",
    "docs/drop/notes.tmp", ".git/HEAD", ".env", ".env.prod", "pkg/__pycache__/m.pyc", "pkg/m.py", "logs/run.log",
]  # fmt: skip


def make(root: Path, ignore: str) -> None:
    for rel in TREE:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    (root / ".amlignore").write_text(ignore)


@pytest.mark.parametrize(
    "ignore",
    ["data/\n*.log\n*.tmp\n", "data/\n*.log\n!src/deep/c.log\ndocs/*\n!docs/keep/\n"],
    ids=["plain-rules", "negated-rules"],
)
def test_staged_folder_equals_the_kernels_snapshot_without_secrets(
    himl_home: Path, tmp_path: Path, ignore: str
) -> None:
    root = tmp_path / "project"
    make(root, ignore)
    expected = sorted(p.as_posix() for p in Snapshot(root, list(ALWAYS_LEFT_OUT)).files())
    assert snapshot_files(Snapshot(root)) == expected
    assert ".env" not in expected and ".env.prod" not in expected and ".git/HEAD" not in expected
    staged = stage_snapshot(Snapshot(root), tmp_path / "stage")
    assert staged_files(staged.folder) == expected
    assert staged.files == len(expected)
    assert all((staged.folder / rel).read_text() == rel for rel in expected if rel != ".amlignore")
    # an unchanged tree is staged once; a change makes a new folder
    assert stage_snapshot(Snapshot(root), tmp_path / "stage").folder == staged.folder
    (root / "src" / "a.py").write_text("changed!")
    assert stage_snapshot(Snapshot(root), tmp_path / "stage").folder != staged.folder
