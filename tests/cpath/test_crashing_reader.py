"""The crashing reader the tiling tests use is a real reader until a file asks it to die, and then it dies.

Without these checks, the tiling test of a worker that dies could pass with a
reader that never crashed (or one that fails every slide).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from himl_cpath.slide import SlideOpenError, open_slide
from himl_cpath.synthetic import SyntheticSlide

from tests.conftest import REPO

READER = "tests.cpath.crashing_reader:CrashingReader"


def test_an_ordinary_slide_reads_as_openslide_reads_it(small_slide: SyntheticSlide) -> None:
    with open_slide(small_slide.path, READER) as crashing, open_slide(small_slide.path, "openslide") as reference:
        assert type(crashing).__name__ == "CrashingReader"
        assert crashing.level_dimensions == reference.level_dimensions
        np.testing.assert_array_equal(
            crashing.read_region((1000, 700), 0, (300, 200)), reference.read_region((1000, 700), 0, (300, 200))
        )


def test_a_file_that_is_no_slide_is_refused_as_openslide_refuses_it(tmp_path: Path) -> None:
    notes = tmp_path / "notes.svs"
    notes.write_text("not a slide", encoding="utf-8")
    with pytest.raises(SlideOpenError) as refused:
        open_slide(notes, READER)
    assert [name for name, _ in refused.value.reasons] == [READER]


def test_a_crash_file_ends_the_process_with_code_3_and_no_python_error(
    small_slide: SyntheticSlide, tmp_path: Path
) -> None:
    crash = tmp_path / "slide_crash.svs"
    crash.write_bytes(small_slide.path.read_bytes())
    code = (
        f"import sys\nfrom himl_cpath.slide import open_slide\nopen_slide(sys.argv[1], {READER!r})\nprint('survived')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(crash)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 3, result.stderr
    assert "survived" not in result.stdout and "Traceback" not in result.stderr
