"""``himl cpath montage``: many slides in one picture; a corrupt slide is named once and left out."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from himl_cpath.montage import CAPTION_HEIGHT, MARGIN, make_montage
from himl_cpath.slide_table import load_slides
from PIL import Image

from tests.conftest import run_himl
from tests.cpath.conftest import SlideFolder


def test_montage_of_twelve_slides_with_one_corrupt(slide_folder: SlideFolder, tmp_path: Path) -> None:
    out = tmp_path / "montage"
    result = run_himl(
        "cpath", "montage", str(slide_folder.table), "--output", str(out), "--width", "800",
        "--processes", "2", "--level", "1", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    # (cuCIM's libtiff writes its own complaints about the corrupt file to stderr: not ours to count)
    warnings = [line for line in lines if line.startswith("himl:")]
    assert len(warnings) == 1, result.stderr
    assert warnings[0].startswith("himl: warning:") and "slide_11" in warnings[0]
    assert re.search(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d montage thumbnails: 12 of 12 slides, .* slides/s", result.stderr, re.M
    )
    assert "montage of 11 slides" in result.stdout
    # 11 slides in 4 columns and 3 rows of cells: each of the 11 cells shows pink tissue, the 12th is blank
    cell = (800 - MARGIN) // 4 - MARGIN
    for name in ("montage.png", "montage.jpg"):
        with Image.open(out / name) as image:
            assert image.width == 800 and image.height == MARGIN + 3 * (cell + CAPTION_HEIGHT + MARGIN), name
            pixels = np.asarray(image.convert("RGB")).astype(int)
        pink = (pixels[..., 0] > 180) & (pixels[..., 1] < 175) & (pixels[..., 2] > 150)
        shares = []
        for index in range(12):
            left = MARGIN + (index % 4) * (cell + MARGIN)
            top = MARGIN + (index // 4) * (cell + CAPTION_HEIGHT + MARGIN)
            shares.append(float(pink[top : top + cell, left : left + cell].mean()))
        assert min(shares[:11]) > 0.05 and shares[11] < 0.001, (name, shares)


def test_montage_from_a_folder_with_include_and_exclude(slide_folder: SlideFolder, tmp_path: Path) -> None:
    slides = load_slides(
        slide_folder.folder, "*.svs", include=["slide_01", "slide_02", "slide_03"], exclude=["slide_02"]
    )
    warnings: list[str] = []
    result = make_montage(slides, tmp_path, width=300, backend="tifffile", warn=warnings.append)
    assert result.shown == ["slide_01", "slide_03"]
    assert warnings == []
    assert result.png.is_file() and result.jpg.is_file()


def test_montage_tints_the_masks_a_table_gives(slide_folder: SlideFolder, tmp_path: Path) -> None:
    mask = np.zeros((120, 160), dtype=np.uint8)
    mask[:, :80] = 255
    Image.fromarray(mask).save(slide_folder.folder / "half_mask.png")
    table = tmp_path / "dataset.csv"
    slide, mask_file = slide_folder.folder / "slide_00.svs", slide_folder.folder / "half_mask.png"
    table.write_text(f"image,slide_id,label,mask\n{slide},s0,1,{mask_file}\n")
    result = make_montage(load_slides(table), tmp_path, width=400)
    with Image.open(result.png) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    left, right = pixels[40:300, 20:180], pixels[40:300, 220:380]
    greener = (left[..., 1] - left[..., 0]).mean() - (right[..., 1] - right[..., 0]).mean()
    assert greener > 30


def test_montage_runs_as_a_job_and_writes_into_the_runs_outputs(slide_folder: SlideFolder, himl_home: Path) -> None:
    result = run_himl(
        "submit", "--module", "himl_cpath", "--", "montage", str(slide_folder.folder), "--glob", "slide_0[0-3].svs",
        cwd=himl_home.parent, env={"HIML_HOME": str(himl_home)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "montage of 4 slides" in result.stdout
    written = sorted(p.name for p in himl_home.rglob("montage.*"))
    assert written == ["montage.jpg", "montage.png"]
    assert all("outputs" in p.parts for p in himl_home.rglob("montage.*"))
    assert not (himl_home.parent / "montage.png").exists()


def test_montage_captions_are_legible_and_right_under_their_thumbnail(
    slide_folder: SlideFolder, tmp_path: Path
) -> None:
    long_id = "a-slide-id-far-too-long-for-its-cell-" * 3
    table = tmp_path / "dataset.csv"
    names = [s.path for s in slide_folder.slides[:4]]
    lines = ["image,slide_id,label"] + [f"{p},{'s' + str(i) if i else long_id},1" for i, p in enumerate(names)]
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = make_montage(load_slides(table), tmp_path, level=-1)  # the default width, 1000
    with Image.open(result.png) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    cell = (1000 - MARGIN) // 2 - MARGIN
    for index in range(4):
        left = MARGIN + (index % 2) * (cell + MARGIN)
        top = MARGIN + (index // 2) * (cell + CAPTION_HEIGHT + MARGIN)
        # the thumbnail reaches the bottom of its cell, where the caption begins
        assert (pixels[top + cell - 3 : top + cell, left : left + cell] < 250).any(axis=2).any()
        band = pixels[top + cell : top + cell + CAPTION_HEIGHT, left : left + cell]
        ink = (band < 100).all(axis=2)
        rows = np.nonzero(ink)[0]
        assert rows.size, index
        assert rows.max() - rows.min() >= 9  # letters at least 10 pixels high
        # the caption stays within its own cell, even the over-long id
        outside = pixels[top + cell : top + cell + CAPTION_HEIGHT, left + cell : left + cell + MARGIN]
        assert not (outside < 100).all(axis=2).any()


def test_montage_takes_hi_ml_create_montage_flags(slide_folder: SlideFolder, tmp_path: Path) -> None:
    from tests.conftest import error_lines

    include, exclude = tmp_path / "include.txt", tmp_path / "exclude.txt"
    include.write_text("slide_01\nslide_02\nslide_03\nslide_11\n", encoding="utf-8")
    exclude.write_text("slide_02\n", encoding="utf-8")
    # --dataset FOLDER without a pattern reads the folder's dataset.csv, as hi-ml does
    result = run_himl(
        "cpath", "montage", "--dataset", str(slide_folder.folder), "--include_by_slide_id", str(include),
        "--exclude_by_slide_id", str(exclude), "--parallel", "2", "--backend", "openslide", "--level", "1",
        "--width", "300", "--output_path", str(tmp_path / "one"), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "montage of 2 slides" in result.stdout and "slide_11" in result.stderr  # 01 and 03; 11 is corrupt
    with Image.open(tmp_path / "one" / "montage.png") as image:
        assert image.width == 300
    globbed = run_himl(
        "cpath", "montage", "--dataset", str(slide_folder.folder), "--image_glob_pattern", "slide_0[0-4].svs",
        "--width", "200", "--output_path", str(tmp_path / "two"), cwd=tmp_path,
    )  # fmt: skip
    assert globbed.returncode == 0, globbed.stderr
    assert "montage of 5 slides" in globbed.stdout and (tmp_path / "two" / "montage.jpg").is_file()

    for flag in ("--cluster", "--conda_env", "--datastore"):
        refused = run_himl("cpath", "montage", "--dataset", str(slide_folder.folder), flag, "x", cwd=tmp_path)
        lines = error_lines(refused.stderr)
        assert refused.returncode == 2 and len(lines) == 1, refused.stderr
        assert (
            f"montage {flag}: this command runs here only" in lines[0] and "himl submit --module himl_cpath" in lines[0]
        )
    both = run_himl("cpath", "montage", str(slide_folder.folder), "--dataset", str(slide_folder.folder), cwd=tmp_path)
    assert both.returncode == 2 and "give the slides once, as SOURCE or as --dataset" in error_lines(both.stderr)[0]
    assert not list(tmp_path.glob("montage.*"))  # nothing written by the refused runs
