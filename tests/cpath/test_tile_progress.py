"""Tiling keeps its progress: killed runs, orphaned workers, partial reruns, broken output folders."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from himl_cpath.slide_table import load_slides
from himl_cpath.tiles_dataset import tile_slides
from himl_cpath.tiling import TilingOptions

from tests.conftest import HIML, REPO, error_lines, run_himl
from tests.cpath.conftest import SlideFolder

OPTIONS = TilingOptions(tile_size=256, level=0, min_occupancy=0.8)
READER = "tests.cpath.switch_reader:SwitchReader"
TILE_ARGS = ("--tile-size", "256", "--min-occupancy", "0.8", "--backend", READER)


def read_table(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def copy_slides(slide_folder: SlideFolder, folder: Path, count: int) -> Path:
    folder.mkdir()
    for index in range(count):
        shutil.copy(slide_folder.slides[index].path, folder / f"slide_{index:02d}.svs")
    return folder


def test_a_run_killed_after_three_of_four_slides_redoes_only_the_fourth(
    slide_folder: SlideFolder, tmp_path: Path
) -> None:
    slides = copy_slides(slide_folder, tmp_path / "slides", 4)
    out = tmp_path / "tiles"
    env = {"PYTHONPATH": str(REPO), "HIML_TEST_KILL_AT": "slide_03"}
    killed = run_himl("cpath", "tile", str(slides), "--output", str(out), *TILE_ARGS, cwd=tmp_path, env=env)
    assert killed.returncode == 9, killed.stderr
    finished = [out / f"slide_{i:02d}" / "dataset.csv" for i in range(3)]
    assert all(table.is_file() for table in finished)
    assert not (out / "slide_03" / "dataset.csv").exists()
    stamps = [table.stat().st_mtime_ns for table in finished]

    env = {"PYTHONPATH": str(REPO)}
    rerun = run_himl("cpath", "tile", str(slides), "--output", str(out), *TILE_ARGS, cwd=tmp_path, env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert "from 1 slides" in rerun.stdout and "3 already done" in rerun.stdout
    assert [table.stat().st_mtime_ns for table in finished] == stamps
    assert {r["slide_id"] for r in read_table(out / "dataset.csv")} == {f"slide_{i:02d}" for i in range(4)}


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_worker_processes_end_when_their_parent_is_killed(slide_folder: SlideFolder, tmp_path: Path) -> None:
    slides = copy_slides(slide_folder, tmp_path / "slides", 3)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HIML_TEST_SLOW": "3"}
    parent = subprocess.Popen(
        [HIML, "cpath", "tile", str(slides), "--output", str(tmp_path / "tiles"), "--processes", "2", *TILE_ARGS],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        workers: set[int] = set()
        while time.monotonic() < deadline and len(workers) < 2:
            time.sleep(0.5)
            workers = children_of(parent.pid)
        assert len(workers) >= 2, "the pool's workers never started"
        time.sleep(2)  # they are now inside slow reads
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(running(pid) for pid in workers):
            time.sleep(0.25)
        left = [pid for pid in workers if running(pid)]
        assert not left, f"worker processes {left} outlived their parent"
    finally:
        for pid in children_of(parent.pid) | {parent.pid}:
            if running(pid):
                os.kill(pid, signal.SIGKILL)


def test_reruns_with_include_keep_the_rows_of_other_slides(slide_folder: SlideFolder, tmp_path: Path) -> None:
    out = tmp_path / "tiles"
    tile_slides(load_slides(slide_folder.table, include=["slide_00", "slide_01"]), out, OPTIONS)
    first = read_table(out / "dataset.csv")
    tile_slides(load_slides(slide_folder.table, include=["slide_02"]), out, OPTIONS)
    tile_slides(load_slides(slide_folder.table, include=["slide_11"]), out, OPTIONS)  # the corrupt one: fails
    rows = read_table(out / "dataset.csv")
    assert {r["slide_id"] for r in rows} == {"slide_00", "slide_01", "slide_02"}
    assert [r for r in rows if r["slide_id"] != "slide_02"] == first
    again = tile_slides(load_slides(slide_folder.table, exclude=["slide_11", "slide_00"]), out, OPTIONS)
    assert sorted(again.skipped) == ["slide_01", "slide_02"]
    assert {r["slide_id"] for r in read_table(out / "dataset.csv")} > {"slide_00", "slide_01", "slide_02"}
    assert [r["slide_id"] for r in read_table(out / "failed_slides.csv")] == ["slide_11"]


def test_a_corrupt_tiling_json_or_an_output_that_is_a_file_is_one_line(
    slide_folder: SlideFolder, tmp_path: Path
) -> None:
    out = tmp_path / "tiles"
    out.mkdir()
    (out / "tiling.json").write_text('{"tile_size": 2', encoding="utf-8")
    a_file = tmp_path / "tiles.txt"
    a_file.write_text("not a folder", encoding="utf-8")
    cases = [(out, "tiling.json is not valid JSON"), (a_file, "is a file, not a folder")]
    for output, expected in cases:
        args = ("cpath", "tile", str(slide_folder.table), "--output", str(output), "--include", "slide_00")
        result = run_himl(*args, cwd=tmp_path)
        lines = error_lines(result.stderr)
        assert result.returncode != 0 and len(lines) == 1 and expected in lines[0], result.stderr
        assert "Traceback" not in result.stderr
    assert a_file.read_text(encoding="utf-8") == "not a folder"
    assert (out / "tiling.json").read_text(encoding="utf-8") == '{"tile_size": 2'


def test_png_level_changes_the_size_not_the_pixels(slide_folder: SlideFolder, tmp_path: Path) -> None:
    import numpy as np
    from himl_cpath.tiles_dataset import WriteOptions
    from PIL import Image

    from himl_kernel.errors import HimlError

    slides = load_slides(slide_folder.table, include=["slide_00"])
    sizes, pixels = {}, {}
    for level in (0, 1, 9):
        out = tmp_path / f"level{level}"
        tile_slides(slides, out, OPTIONS, write=WriteOptions(png_level=level))
        files = sorted(out.glob("slide_00/*.png"))
        sizes[level] = sum(f.stat().st_size for f in files)
        pixels[level] = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    assert sizes[0] > sizes[1] >= sizes[9]
    for level in (1, 9):
        assert all(np.array_equal(a, b) for a, b in zip(pixels[0], pixels[level], strict=True))
    try:
        WriteOptions(png_level=10)
    except HimlError as exc:
        assert "0 to 9, got 10" in str(exc)
    else:
        raise AssertionError("png level 10 was accepted")
    result = run_himl(
        "cpath", "tile", str(slide_folder.table), "--output", str(tmp_path / "x"), "--png-level", "12", cwd=tmp_path
    )
    assert result.returncode != 0 and len(error_lines(result.stderr)) == 1 and "got 12" in result.stderr
