"""Offline tiling of many slides: ``himl cpath tile``, resuming, failing slides."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from himl_cpath.slide_table import load_slides
from himl_cpath.tiles_dataset import tile_slides
from himl_cpath.tiling import TilingOptions

from himl_kernel.errors import HimlError
from tests.conftest import error_lines, run_himl
from tests.cpath.conftest import SlideFolder

OPTIONS = TilingOptions(tile_size=128, level=0, min_occupancy=0.6)


def read_table(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def good_slides(slide_folder: SlideFolder) -> list[str]:
    return [s.path.stem for s in slide_folder.slides]


def test_tile_command_tiles_a_table_of_slides_and_records_the_corrupt_one(
    slide_folder: SlideFolder, tmp_path: Path
) -> None:
    out = tmp_path / "tiles"
    result = run_himl(
        "cpath", "tile", str(slide_folder.table), "--output", str(out), "--tile-size", "128",
        "--min-occupancy", "0.6", "--processes", "2", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "11 slides" in result.stdout and "1 failed" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("himl: warning:")]
    assert len(warnings) == 1 and "failed_slides.csv" in warnings[0]

    rows = read_table(out / "dataset.csv")
    assert list(rows[0]) == ["slide_id", "tile_id", "image", "label", "tile_x", "tile_y", "occupancy"]
    assert {r["slide_id"] for r in rows} == set(good_slides(slide_folder))
    labels = {s.path.stem: str(s.label) for s in slide_folder.slides}
    assert all(r["label"] == labels[r["slide_id"]] for r in rows)
    assert all((out / r["image"]).is_file() for r in rows)
    assert len({r["tile_id"] for r in rows}) == len(rows)
    failed = read_table(out / "failed_slides.csv")
    assert [f["slide_id"] for f in failed] == ["slide_11"]
    assert failed[0]["error"] and "\n" not in failed[0]["error"]
    assert not (out / "slide_11").exists()


def test_tiling_resumes_skipping_finished_slides_and_redoing_half_done_ones(
    slide_folder: SlideFolder, tmp_path: Path
) -> None:
    slides = load_slides(slide_folder.table, exclude=["slide_11"])
    out = tmp_path / "tiles"
    first = tile_slides(slides, out, OPTIONS)
    assert len(first.tiled) == 11 and not first.failed
    before = read_table(out / "dataset.csv")

    # slide_04 was interrupted: its folder holds a stray tile but no table of its own
    (out / "slide_04" / "dataset.csv").unlink()
    (out / "slide_04" / "stray.png").write_bytes(b"half written")
    finished = out / "slide_05" / "dataset.csv"
    stamp = finished.stat().st_mtime_ns

    second = tile_slides(slides, out, OPTIONS, processes=2)
    assert second.tiled == ["slide_04"]
    assert sorted(second.skipped) == sorted(s.slide_id for s in slides if s.slide_id != "slide_04")
    assert not (out / "slide_04" / "stray.png").exists()
    assert finished.stat().st_mtime_ns == stamp
    assert read_table(out / "dataset.csv") == before


def test_resuming_with_other_options_is_refused(slide_folder: SlideFolder, tmp_path: Path) -> None:
    slides = load_slides(slide_folder.folder, "slide_0[12].svs")
    tile_slides(slides, tmp_path / "tiles", OPTIONS)
    assert json.loads((tmp_path / "tiles" / "tiling.json").read_text())["tile_size"] == 128
    with pytest.raises(HimlError, match="tile_size differ"):
        tile_slides(slides, tmp_path / "tiles", TilingOptions(tile_size=256))
    again = tile_slides(slides, tmp_path / "tiles", TilingOptions(tile_size=256), overwrite=True)
    assert len(again.tiled) == 2


def test_tile_command_takes_a_folder_glob_and_include_list(slide_folder: SlideFolder, tmp_path: Path) -> None:
    folder = tmp_path / "slides"
    folder.mkdir()
    for name in ("slide_00.svs", "slide_01.svs", "slide_02.svs"):
        shutil.copy(slide_folder.folder / name, folder / name)
    (folder / "notes.txt").write_text("not a slide")
    ids = tmp_path / "ids.txt"
    ids.write_text("slide_00\nslide_02\n")
    out = tmp_path / "tiles"
    result = run_himl(
        "cpath",
        "tile",
        str(folder),
        "--glob",
        "*.svs",
        "--include",
        f"@{ids}",
        "--output",
        str(out),
        "--format",
        "jpeg",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    rows = read_table(out / "dataset.csv")
    assert {r["slide_id"] for r in rows} == {"slide_00", "slide_02"}
    assert all(r["image"].endswith(".jpg") for r in rows)


def test_tile_command_errors_are_one_line(slide_folder: SlideFolder, tmp_path: Path) -> None:
    cases = [
        (["cpath", "tile", str(tmp_path / "nowhere"), "--output", "x"], "does not exist"),
        (["cpath", "tile", str(slide_folder.table), "--output", "x", "--include", "slide_99"], "slide_99"),
        (["cpath", "tile", str(slide_folder.table), "--output", "x", "--overlap", "300"], "overlap"),
        (
            ["cpath", "tile", str(slide_folder.table), "--output", "x", "--backend", "pil"],
            "unknown slide reader backend",
        ),
    ]
    for args, expected in cases:
        result = run_himl(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        lines = error_lines(result.stderr)
        assert len(lines) == 1 and expected in lines[0], (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_tile_command_needs_an_output_folder_outside_a_job(slide_folder: SlideFolder, tmp_path: Path) -> None:
    result = run_himl("cpath", "tile", str(slide_folder.table), cwd=tmp_path)
    lines = error_lines(result.stderr)
    assert result.returncode == 2 and len(lines) == 1 and "--output is required outside a job" in lines[0]


def test_a_slide_that_kills_its_worker_is_recorded_and_the_others_are_tiled(
    slide_folder: SlideFolder, tmp_path: Path
) -> None:
    folder = tmp_path / "slides"
    folder.mkdir()
    for name in ("slide_00.svs", "slide_01.svs", "slide_02.svs"):
        shutil.copy(slide_folder.folder / name, folder / name)
    shutil.copy(slide_folder.folder / "slide_03.svs", folder / "slide_crash.svs")
    slides = load_slides(folder, "*.svs")
    report = tile_slides(
        slides, tmp_path / "tiles", OPTIONS, processes=2, backend="tests.cpath.crashing_reader:CrashingReader"
    )
    assert sorted(report.tiled) == ["slide_00", "slide_01", "slide_02"]
    assert list(report.failed) == ["slide_crash"] and "worker process died" in report.failed["slide_crash"]
    assert [r["slide_id"] for r in read_table(tmp_path / "tiles" / "failed_slides.csv")] == ["slide_crash"]
    assert {r["slide_id"] for r in read_table(tmp_path / "tiles" / "dataset.csv")} == {
        "slide_00",
        "slide_01",
        "slide_02",
    }


def test_png_tiles_are_lossless_and_jpeg_quality_is_chosen_and_kept_on_resume(
    slide_folder: SlideFolder, tmp_path: Path
) -> None:
    import numpy as np
    from himl_cpath.slide import open_slide
    from PIL import Image

    slide = slide_folder.slides[0]
    base = ["cpath", "tile", str(slide_folder.table), "--include", slide.path.stem, "--tile-size", "128"]
    sizes = {}
    formats = {
        "png": [],
        "q40": ["--format", "jpeg", "--jpeg-quality", "40"],
        "q95": ["--format", "jpeg", "--jpeg-quality", "95"],
    }
    for name, extra in formats.items():
        result = run_himl(*base, "--output", str(tmp_path / name), *extra, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        rows = read_table(tmp_path / name / "dataset.csv")
        assert rows and all(r["image"].endswith(".png" if name == "png" else ".jpg") for r in rows)
        sizes[name] = sum((tmp_path / name / r["image"]).stat().st_size for r in rows)
        with open_slide(slide.path) as reader, Image.open(tmp_path / name / rows[0]["image"]) as image:
            stored = np.asarray(image.convert("RGB")).astype(int)
            truth = reader.read_region((int(rows[0]["tile_x"]), int(rows[0]["tile_y"])), 0, (128, 128)).astype(int)
        error = np.abs(stored - truth).mean()
        assert error == 0 if name == "png" else 0 < error < 20, (name, error)
    assert sizes["q40"] < sizes["q95"]
    again = run_himl(*base, "--output", str(tmp_path / "q40"), "--format", "jpeg", cwd=tmp_path)
    assert again.returncode == 2 and "jpeg_quality differ" in error_lines(again.stderr)[0]
    bad = run_himl(*base, "--output", str(tmp_path / "bad"), "--format", "jpeg", "--jpeg-quality", "0", cwd=tmp_path)
    assert bad.returncode == 2 and error_lines(bad.stderr) == ["himl: error: JPEG quality must be 1 to 100, got 0"]
