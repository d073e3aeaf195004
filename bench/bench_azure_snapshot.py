"""How long the AzureML plugin takes to build a job's code snapshot, against `git ls-files | tar`.

Run with the interpreter of an environment that has himl-azure-v2 installed:

    python bench/bench_azure_snapshot.py [--files 5000] [--runs 5]

A tree of ``--files`` files is made in a temporary folder, with an
``.amlignore`` (and the same rules as ``.gitignore``, committed to a git
repository) that leaves out a fifth of them. Timed, each from a cold cache:
``stage_snapshot`` (rules, size check, staging as hard links) and the
baseline ``git ls-files -z | tar --null -T - -cf snapshot.tar``. Goal: at most
1.5 times the baseline's median. The script reports and always exits 0.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

GOAL_RATIO = 1.5
RULES = "data/\n*.log\nbuild/\n"


def make_tree(root: Path, files: int) -> None:
    for index in range(files):
        if index % 5 == 0:
            rel = f"data/shard{index % 17}/item{index}.bin" if index % 10 == 0 else f"logs/run{index}.log"
        else:
            rel = f"src/pkg{index % 23}/mod{index % 7}/file{index}.py"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# file {index}\n" * 20)
    (root / ".amlignore").write_text(RULES)
    (root / ".gitignore").write_text(RULES)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "tree"], cwd=root, check=True)


def time_staging(root: Path, scratch: Path, runs: int) -> tuple[list[float], int]:
    from himl_azure_v2.code_snapshot import stage_snapshot

    from himl_kernel.snapshot import Snapshot

    seconds, count = [], 0
    for index in range(runs + 1):
        cache = scratch / f"cache{index}"
        start = time.perf_counter()
        staged = stage_snapshot(Snapshot(root), cache)
        elapsed = time.perf_counter() - start
        count = staged.files
        shutil.rmtree(cache)
        if index > 0:
            seconds.append(elapsed)
    return seconds, count


def time_git_tar(root: Path, scratch: Path, runs: int) -> list[float]:
    seconds = []
    for index in range(runs + 1):
        out = scratch / f"snapshot{index}.tar"
        start = time.perf_counter()
        subprocess.run(
            f"git ls-files -z | tar --null -T - -cf {out}", shell=True, cwd=root, check=True, capture_output=True
        )
        elapsed = time.perf_counter() - start
        out.unlink()
        if index > 0:
            seconds.append(elapsed)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, scratch = Path(tmp) / "tree", Path(tmp) / "scratch"
        root.mkdir()
        scratch.mkdir()
        make_tree(root, args.files)
        staging, kept = time_staging(root, scratch, args.runs)
        baseline = time_git_tar(root, scratch, args.runs)
    ours, theirs = statistics.median(staging), statistics.median(baseline)
    ratio = ours / theirs
    print(f"tree: {args.files} files, {kept} in the snapshot; {args.runs} runs each, median wall time")
    print(f"  stage_snapshot (himl-azure-v2)     {ours:.3f} s")
    print(f"  git ls-files | tar (baseline)      {theirs:.3f} s")
    verdict = "meets" if ratio <= GOAL_RATIO else "misses"
    print(f"  ratio {ratio:.2f} ({verdict} the goal of at most {GOAL_RATIO})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
