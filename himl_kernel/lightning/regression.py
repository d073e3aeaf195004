"""Regression test: a run's outputs and metrics against a folder of expected ones.

The folder mirrors the outputs folder: each file in it must exist in the run's
outputs with the same content. CSV files are compared cell by cell, numbers
within a relative tolerance; other files byte for byte. A ``metrics.json`` at
the top of the folder (``{"test/loss": 0.01, ...}``) is compared with the
run's final metric values, within the same tolerance.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from pathlib import Path

from himl_kernel.errors import HimlError

METRICS_FILE = "metrics.json"


def _close(expected: str, actual: str, tolerance: float) -> bool:
    if expected == actual:
        return True
    try:
        a, b = float(expected), float(actual)
    except ValueError:
        return False
    return math.isclose(a, b, rel_tol=tolerance, abs_tol=0.0) or (a == 0.0 and abs(b) <= tolerance)


def _csv_difference(expected: Path, actual: Path, tolerance: float) -> str:
    with open(expected, newline="", encoding="utf-8") as handle:
        want = list(csv.reader(handle))
    with open(actual, newline="", encoding="utf-8") as handle:
        got = list(csv.reader(handle))
    if len(want) != len(got):
        return f"{len(got)} rows, expected {len(want)}"
    for row_index, (want_row, got_row) in enumerate(zip(want, got, strict=True)):
        if len(want_row) != len(got_row):
            return f"row {row_index + 1} has {len(got_row)} cells, expected {len(want_row)}"
        for col, (w, g) in enumerate(zip(want_row, got_row, strict=True)):
            if not _close(w, g, tolerance):
                return f"row {row_index + 1}, column {col + 1}: {g!r}, expected {w!r}"
    return ""


def differences(
    expected_folder: Path, outputs: Path, metrics: Mapping[str, float], tolerance: float = 0.0
) -> list[str]:
    """Every way the run differs from the expected folder, one short phrase each."""
    problems: list[str] = []
    for expected in sorted(p for p in expected_folder.rglob("*") if p.is_file()):
        relative = expected.relative_to(expected_folder)
        if relative.as_posix() == METRICS_FILE:
            wanted = json.loads(expected.read_text(encoding="utf-8"))
            for key, value in sorted(wanted.items()):
                if key not in metrics:
                    problems.append(f"metric {key} was not logged")
                elif not _close(repr(float(value)), repr(float(metrics[key])), tolerance):
                    problems.append(f"metric {key} is {metrics[key]!r}, expected {value!r}")
            continue
        actual = outputs / relative
        if not actual.is_file():
            problems.append(f"{relative} is missing from the outputs")
        elif expected.suffix.lower() == ".csv":
            problem = _csv_difference(expected, actual, tolerance)
            if problem:
                problems.append(f"{relative}: {problem}")
        elif expected.read_bytes() != actual.read_bytes():
            problems.append(f"{relative} differs")
    return problems


def compare_with_folder(
    expected_folder: Path, outputs: Path, metrics: Mapping[str, float], tolerance: float = 0.0
) -> None:
    """Raise a one-line :class:`HimlError` listing the differences, if any."""
    if not expected_folder.is_dir():
        raise HimlError(f"regression_test_folder {expected_folder} is not a folder")
    problems = differences(expected_folder, outputs, metrics, tolerance)
    if problems:
        raise HimlError(f"regression test against {expected_folder} failed: " + "; ".join(problems))
