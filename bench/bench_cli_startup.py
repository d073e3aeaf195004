"""How long `himl --help` and `himl plugins` take to start, against `import torch`.

Run with the interpreter of the environment that has himl installed:

    python bench/bench_cli_startup.py [--runs 10] [--torch-runs 5]

Each command runs as a fresh subprocess; the table gives the best and the
median wall time, and each himl command's median as a fraction of the torch
import's median. The goals: every himl command under 0.35 s, and under a
fifth of the torch import. The script reports and always exits 0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

GOAL_SECONDS = 0.35
GOAL_FRACTION_OF_TORCH = 0.2


@dataclass
class Timing:
    label: str
    seconds: list[float]
    failed: str = ""

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def time_command(label: str, command: list[str], runs: int, env: dict[str, str], cwd: Path) -> Timing:
    """Wall time of ``runs`` fresh runs of ``command`` (after one untimed warm-up)."""
    seconds: list[float] = []
    for index in range(runs + 1):
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, env=env, cwd=cwd)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            tail = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["(no stderr)"]
            return Timing(label, seconds or [elapsed], failed=f"exit {result.returncode}: {tail[0]}")
        if index > 0:  # the first run fills the OS file cache; not timed
            seconds.append(elapsed)
    return Timing(label, seconds)


def row(label: str, runs: object, best: object, median: object, ratio: object, note: str) -> str:
    """One table line; numbers get three decimals (two for the ratio)."""

    def cell(value: object, width: int, digits: int) -> str:
        text = f"{value:.{digits}f}" if isinstance(value, float) else str(value)
        return f"{text:>{width}}"

    return f"{label:<26} {cell(runs, 4, 0)} {cell(best, 8, 3)} {cell(median, 9, 3)} {cell(ratio, 8, 2)}  {note}"


def himl_command() -> list[str]:
    script = Path(sys.executable).with_name("himl")
    return [str(script)] if script.exists() else [sys.executable, "-m", "himl_kernel"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs of each himl command")
    parser.add_argument("--torch-runs", type=int, default=5, help="timed runs of the torch import")
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "HIML_PLUGIN_AUTOLOAD")}
    himl = himl_command()
    with tempfile.TemporaryDirectory(prefix="himl-bench-") as scratch:
        cwd = Path(scratch)
        env["HIML_HOME"] = str(cwd / "store")
        torch = time_command(
            "python -c 'import torch'", [sys.executable, "-c", "import torch"], args.torch_runs, env, cwd
        )
        commands = [
            time_command("himl --help", [*himl, "--help"], args.runs, env, cwd),
            time_command("himl plugins", [*himl, "plugins"], args.runs, env, cwd),
        ]

    print(f"python {sys.version.split()[0]} at {sys.executable}")
    print(row("command", "runs", "best s", "median s", "/ torch", f"goals: < {GOAL_SECONDS} s, < 1/5 torch"))
    if torch.failed:
        print(row(torch.label, "", "", "", "", f"FAILED ({torch.failed})"))
        baseline = None
    else:
        baseline = torch.median
        print(row(torch.label, len(torch.seconds), torch.best, torch.median, 1.0, "baseline"))
    for timing in commands:
        if timing.failed:
            print(row(timing.label, "", "", "", "", f"FAILED ({timing.failed})"))
            continue
        fast = "met" if timing.median < GOAL_SECONDS else "MISSED"
        if baseline is None:
            print(row(timing.label, len(timing.seconds), timing.best, timing.median, "n/a", f"{fast} / n/a"))
            continue
        ratio = timing.median / baseline
        light = "met" if ratio < GOAL_FRACTION_OF_TORCH else "MISSED"
        print(row(timing.label, len(timing.seconds), timing.best, timing.median, ratio, f"{fast} / {light}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
