"""Hostile slide tables: ids that look like paths never reach outside ``--output``; readers are classes only."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from himl_cpath.feature_cache import entry_path
from himl_cpath.mil_figures import write_figures
from himl_cpath.safe_names import check_distinct, file_stem, inside
from himl_cpath.slide import open_slide
from himl_cpath.slide_table import load_slides
from himl_cpath.tiles_dataset import tile_slides
from himl_cpath.tiling import TilingOptions

from himl_kernel.errors import HimlError
from tests.conftest import error_lines, run_himl
from tests.cpath.conftest import SlideFolder

OPTIONS = TilingOptions(tile_size=256, level=0, min_occupancy=0.8)


def tree_checksum(root: Path, leave_out: Path) -> str:
    """A digest of every path name and file content under ``root``, except the ``leave_out`` folder."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path == leave_out or leave_out in path.parents:
            continue
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def workspace(tmp_path: Path) -> tuple[Path, Path]:
    """A folder with a victim folder (and files) beside a deep output folder; (root, output)."""
    root = tmp_path / "work"
    victim = root / "victim"
    victim.mkdir(parents=True)
    (victim / "precious.txt").write_text("keep me", encoding="utf-8")
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "notes.txt").write_text("mine", encoding="utf-8")
    return root, root / "a" / "b" / "out"


def hostile_ids(root: Path) -> list[str]:
    return ["../../../victim", "../../victim", ".", "..", str(root / "victim"), "x/../../..", "a\\..\\..", "/etc"]


@pytest.mark.parametrize("index", range(8))
def test_a_hostile_slide_id_never_touches_anything_outside_the_output(
    index: int, slide_folder: SlideFolder, tmp_path: Path
) -> None:
    root, out = workspace(tmp_path)
    slide_id = hostile_ids(root)[index]
    table = root / "slides.csv"
    table.write_text(f'image,slide_id,label\n{slide_folder.slides[0].path},"{slide_id}",1\n', encoding="utf-8")
    before = tree_checksum(root, out)
    slides = load_slides(table)
    assert [s.slide_id for s in slides] == [slide_id]
    for overwrite in (False, True, False):  # a fresh run, a start over, a resumed run
        report = tile_slides(slides, out, OPTIONS, overwrite=overwrite)
        assert not report.failed
    assert tree_checksum(root, out) == before
    rows = (out / "dataset.csv").read_text(encoding="utf-8").splitlines()
    assert len(rows) > 1
    folders = [p for p in out.iterdir() if p.is_dir()]
    assert len(folders) == 1 and folders[0].name == file_stem(slide_id)
    assert all(inside(out, p) for p in folders[0].iterdir())


def test_a_half_done_hostile_slide_is_redone_inside_the_output_only(slide_folder: SlideFolder, tmp_path: Path) -> None:
    """Resuming deletes a half-done slide's folder: for ``..`` ids it must be the safe one, not a parent."""
    root, out = workspace(tmp_path)
    slides = load_slides(slide_folder.table, include=["slide_00"])
    hostile = [type(slides[0])(slide_id="../../../victim", image=slides[0].image, label="1")]
    tile_slides(hostile, out, OPTIONS)
    (out / file_stem("../../../victim") / "dataset.csv").unlink()  # as if killed before the slide finished
    before = tree_checksum(root, out)
    report = tile_slides(hostile, out, OPTIONS)
    assert report.tiled == ["../../../victim"]
    assert tree_checksum(root, out) == before
    assert (root / "victim" / "precious.txt").read_text(encoding="utf-8") == "keep me"


def test_plain_ids_keep_their_names_and_others_get_distinct_safe_ones() -> None:
    assert file_stem("TCGA-AB-1234.01_x") == "TCGA-AB-1234.01_x"
    odd = ["../a", "..\\a", "_a", ".a", "a/", "a b", "a:b", "é", "x" * 300, "..", "."]
    stems = [file_stem(i) for i in odd]
    assert len(set(stems)) == len(stems)
    for stem in stems:
        assert "/" not in stem and "\\" not in stem and stem not in (".", "..") and not stem.startswith(".")
        assert len(stem) <= 140
    with pytest.raises(HimlError, match="empty"):
        file_stem("")


def test_two_ids_that_meet_on_a_case_insensitive_disk_are_refused_naming_the_rows(tmp_path: Path) -> None:
    with pytest.raises(HimlError) as caught:
        check_distinct(["s1", "Slide_A", "slide_a"], "slides.csv")
    message = str(caught.value)
    assert "\n" not in message and "row 2" in message and "row 3" in message and "'slide_a'" in message


def test_the_tile_command_refuses_colliding_ids_in_one_line(slide_folder: SlideFolder, tmp_path: Path) -> None:
    path = slide_folder.slides[0].path
    table = tmp_path / "slides.csv"
    table.write_text(f"image,slide_id\n{path},CASE\n{path},case\n", encoding="utf-8")
    result = run_himl("cpath", "tile", str(table), "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode != 0
    assert len(error_lines(result.stderr)) == 1 and "row 1" in result.stderr and "row 2" in result.stderr
    assert not (tmp_path / "out").exists()


def test_figures_and_feature_cache_names_stay_inside_their_folders(tmp_path: Path) -> None:
    root, out = workspace(tmp_path)
    before = tree_checksum(root, out)
    rows = []
    for slide_id, label in (("../../../victim", 1), ("..", 0), (str(root / "victim"), 1)):
        tile = tmp_path / f"tile_{label}_{len(rows)}.png"
        from PIL import Image

        Image.new("RGB", (16, 16), (200, 100, 100)).save(tile)
        for k in range(3):
            rows.append(
                {"slide_id": slide_id, "label": str(label), "prediction": str(label), "prob_0": "0.3",
                 "prob_1": "0.7", "tile_x": str(16 * k), "tile_y": "0", "attention": str(0.1 * k),
                 "image": str(tile)}
            )  # fmt: skip
    written = write_figures(out, rows, {}, num_classes=2, tile_size=16, tile_level=0, top_k=2, backend=None)
    assert tree_checksum(root, out) == before
    assert len([p for p in written if p.parent.name == "attention"]) == 6
    assert all(inside(out, p) for p in written)
    assert entry_path(out, "../../victim").parent == out


def test_a_function_as_backend_is_refused_before_it_is_called(
    slide_folder: SlideFolder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    calls: list[object] = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a) or 0)
    with pytest.raises(HimlError, match="not a SlideReader subclass"):
        open_slide(slide_folder.slides[0].path, "os:system")
    assert calls == []
    with pytest.raises(HimlError, match="does not exist"):
        open_slide(slide_folder.slides[0].path, "os:no_such_reader")
    result = run_himl(
        "cpath", "tile", str(slide_folder.table), "--output", str(tmp_path / "out"),
        "--backend", "os:system", "--include", "slide_00", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode != 0 and len(error_lines(result.stderr)) == 1
    assert "os:system" in result.stderr and not (tmp_path / "out").exists()
    with open_slide(slide_folder.slides[0].path, "tests.cpath.crashing_reader:CrashingReader") as reader:
        assert reader.dimensions == (1600, 1200)
