"""Tissue masks and tile selection, checked against the geometry the synthetic slides were drawn from."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from himl_cpath.slide import open_slide
from himl_cpath.slide_table import SlideRecord
from himl_cpath.synthetic import SyntheticSlide
from himl_cpath.tiles_dataset import tile_slides
from himl_cpath.tiling import TilingOptions, group_tiles, plan_tiles, read_tiles, tissue_mask_for
from himl_cpath.tissue import TissueMask, otsu_threshold
from PIL import Image

from himl_kernel.errors import HimlError


def analytic_occupancy(slide: SyntheticSlide, x: int, y: int, side: float, samples: int = 16) -> float:
    """The share of a level-0 square that lies inside the slide's tissue ellipses."""
    offsets = (np.arange(samples) + 0.5) * side / samples
    return float(slide.tissue_mask(x + offsets[None, :], y + offsets[:, None]).mean())


def read_table(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_otsu_splits_two_populations() -> None:
    rng = np.random.default_rng(0)
    grey = np.concatenate([rng.normal(80, 10, 5000), rng.normal(220, 8, 5000)]).clip(0, 255).astype(np.uint8)
    threshold = otsu_threshold(grey)
    assert 110 < threshold < 190
    assert ((grey <= threshold) == (np.arange(10000) < 5000)).mean() > 0.999


def test_occupancy_reads_the_mask_in_level0_pixels() -> None:
    mask = np.zeros((10, 10), dtype=bool)
    mask[:, :5] = True
    tissue = TissueMask(mask, (16.0, 16.0))
    assert tissue.occupancy(0, 0, 80, 160) == 1.0
    assert tissue.occupancy(80, 0, 80, 80) == 0.0
    assert tissue.occupancy(0, 0, 160, 160) == 0.5
    assert tissue.occupancy(-500, -500, 10, 10) == 0.0


@pytest.mark.slow
def test_tiling_a_20000_pixel_slide_keeps_tissue_tiles_identical_to_openslide(
    big_slide: SyntheticSlide, tmp_path: Path
) -> None:
    """Every kept tile lies in tissue, and every tile image equals read_region at its coordinates.

    Level 0, 224 px, two processes: about 1,750 tiles; all of them are
    checked, both for tissue (against the ellipses the slide was drawn from)
    and pixel for pixel against OpenSlide.
    """
    import openslide

    options = TilingOptions(tile_size=224, level=0, min_occupancy=0.5)
    report = tile_slides([SlideRecord("big", big_slide.path, "1")], tmp_path / "tiles", options, processes=2)
    assert report.tiled == ["big"] and not report.failed
    rows = read_table(tmp_path / "tiles" / "dataset.csv")
    assert len(rows) == report.tiles > 1000
    assert set(rows[0]) == {"slide_id", "tile_id", "image", "label", "tile_x", "tile_y", "occupancy"}

    # inside tissue: at least 40% of each kept tile is tissue by the true geometry (the mask is 16x coarser)
    truth = [analytic_occupancy(big_slide, int(r["tile_x"]), int(r["tile_y"]), 224) for r in rows]
    assert min(truth) >= 0.4
    assert all(float(r["occupancy"]) >= 0.5 for r in rows)
    # and nothing that is almost all tissue was left out: the grid cells fully inside tissue are all kept
    kept = {(int(r["tile_x"]), int(r["tile_y"])) for r in rows}
    grid = range(0, 20_000 - 224 + 1, 224)
    full = {(x, y) for y in grid for x in grid if analytic_occupancy(big_slide, x, y, 224, samples=4) == 1.0}
    assert len(full - kept) <= 0.01 * len(full)

    slide = openslide.OpenSlide(str(big_slide.path))
    for row in rows:
        expected = np.asarray(slide.read_region((int(row["tile_x"]), int(row["tile_y"])), 0, (224, 224)))
        assert (expected[..., 3] == 255).all()
        with Image.open(tmp_path / "tiles" / row["image"]) as image:
            np.testing.assert_array_equal(np.asarray(image), expected[..., :3], err_msg=row["tile_id"])


@pytest.mark.parametrize(("level", "overlap", "block"), [(1, 32, 4), (2, 8, 1), (0, 56, 4)])
def test_tiles_at_other_levels_and_overlaps_match_read_region(
    small_slide: SyntheticSlide, level: int, overlap: int, block: int
) -> None:
    import openslide

    options = TilingOptions(tile_size={0: 224, 1: 64, 2: 32}[level], level=level, overlap=overlap, min_occupancy=0.3)
    slide = openslide.OpenSlide(str(small_slide.path))
    # level 2's downsample is 16.02, not whole: OpenSlide then resamples every region it
    # reads, and only its own reader can match it; at whole downsamples tifffile matches too
    backends = ("openslide", "tifffile") if level < 2 else ("openslide",)
    for backend in backends:
        with open_slide(small_slide.path, backend) as reader:
            tiles = plan_tiles(reader, tissue_mask_for(reader, options), options)
            assert tiles
            stride = round((options.tile_size - overlap) * reader.level_downsamples[level])
            if level < 2:
                assert all(t.x % stride == 0 and t.y % stride == 0 for t in tiles)
            for tile, pixels in read_tiles(reader, group_tiles(tiles, reader, options, block=block), options):
                expected = np.asarray(slide.read_region((tile.x, tile.y), level, (options.tile_size,) * 2))[..., :3]
                np.testing.assert_array_equal(pixels, expected, err_msg=f"{backend} {tile}")


def test_a_given_mask_image_decides_the_tiles(small_slide: SyntheticSlide, tmp_path: Path) -> None:
    mask = np.zeros((180, 240), dtype=np.uint8)  # one tenth of the slide in each direction
    mask[:, :120] = 1  # only the left half counts as tissue
    mask_path = tmp_path / "mask.png"
    Image.fromarray(mask).save(mask_path)
    options = TilingOptions(tile_size=224, min_occupancy=0.5)
    with open_slide(small_slide.path) as reader:
        tiles = plan_tiles(reader, tissue_mask_for(reader, options, mask_path), options)
    assert tiles and all(t.x + 224 <= 1200 + 112 for t in tiles)
    assert len(tiles) == 5 * 8  # every grid cell of the left half: 5 whole columns, 8 rows


def test_a_slide_without_tissue_gives_no_tiles(tmp_path: Path) -> None:
    import tifffile

    path = tmp_path / "blank.svs"
    blank = np.full((1024, 1024, 3), 242, dtype=np.uint8)
    with tifffile.TiffWriter(path) as tif:
        tif.write(
            blank, tile=(256, 256), compression="jpeg", photometric="rgb", description="Aperio blank", metadata=None
        )
        tif.write(blank[:128, :128], compression="jpeg", photometric="rgb", description="thumb", metadata=None)
        tif.write(
            blank[::4, ::4], tile=(256, 256), compression="jpeg", photometric="rgb", description="Aperio", metadata=None
        )
    options = TilingOptions()
    with open_slide(path) as reader:
        assert plan_tiles(reader, tissue_mask_for(reader, options), options) == []


def test_bad_tiling_options_are_one_line_errors() -> None:
    with pytest.raises(HimlError, match="overlap"):
        TilingOptions(tile_size=64, overlap=64)
    with pytest.raises(HimlError, match="occupancy"):
        TilingOptions(min_occupancy=1.5)
