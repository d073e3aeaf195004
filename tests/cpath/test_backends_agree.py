"""Every reader backend reads the same pixels from the same files, region by region.

The files come from other writers than :mod:`himl_cpath.synthetic`: a generic
tiled pyramid written level by level with tifffile (lossless, so the pixels
must be equal; and JPEG, decoded by each backend's own JPEG library, so
within a small tolerance), besides our own Aperio-style slide. cuCIM is part
of this plugin's CI install (the ``cucim`` extra, read on the CPU).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from himl_cpath.slide import open_slide
from himl_cpath.synthetic import SyntheticSlide

BACKENDS = ("openslide", "cucim", "tifffile")
SIZE = (300, 200)


def write_generic_pyramid(path: Path, compression: str) -> list[np.ndarray]:
    """A three-level tiled RGB pyramid (downsamples 1, 2, 4) in plain top-level TIFF pages."""
    height, width = 1536, 2048
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) % 256], axis=-1).astype(np.uint8)
    base[100:400, 300:900] = np.random.default_rng(0).integers(0, 255, (300, 600, 3), dtype=np.uint8)
    levels = [base, base[::2, ::2].copy(), base[::4, ::4].copy()]
    with tifffile.TiffWriter(path) as tif:
        for index, level in enumerate(levels):
            tif.write(level, tile=(256, 256), compression=compression, photometric="rgb", subfiletype=int(index > 0))
    return levels


def regions(level_dimensions: tuple[tuple[int, int], ...]) -> list[tuple[int, int, int]]:
    """(level, x, y) on a grid over each level, at level-0 coordinates aligned to the level's downsample,
    including regions that run over the right and bottom edges."""
    found = []
    for level, (width, height) in enumerate(level_dimensions):
        step = 2**level
        for fx in (0.0, 0.37, 0.9):
            for fy in (0.0, 0.51, 0.95):
                found.append((level, int(width * fx) * step, int(height * fy) * step))
    return found


def test_a_lossless_generic_pyramid_reads_exactly_alike(tmp_path: Path) -> None:
    path = tmp_path / "generic_zlib.tiff"
    levels = write_generic_pyramid(path, "zlib")
    read = {}
    for backend in BACKENDS:
        with open_slide(path, backend) as reader:
            assert reader.level_dimensions == ((2048, 1536), (1024, 768), (512, 384)), backend
            assert reader.level_downsamples == (1.0, 2.0, 4.0), backend
            read[backend] = {r: reader.read_region(r[1:], r[0], SIZE) for r in regions(reader.level_dimensions)}
    for (level, x, y), region in read["openslide"].items():
        step = 2**level
        inside = levels[level][y // step : y // step + SIZE[1], x // step : x // step + SIZE[0]]
        assert np.array_equal(region[: inside.shape[0], : inside.shape[1]], inside), (level, x, y)
        assert (region[inside.shape[0] :] == 255).all() and (region[:, inside.shape[1] :] == 255).all()
        for other in ("cucim", "tifffile"):
            assert np.array_equal(read[other][(level, x, y)], region), (other, level, x, y)


@pytest.mark.parametrize("kind", ["generic_jpeg", "synthetic_svs"])
def test_jpeg_slides_read_alike_within_the_decoders_rounding(
    kind: str, tmp_path: Path, small_slide: SyntheticSlide
) -> None:
    if kind == "generic_jpeg":
        path = tmp_path / "generic_jpeg.tiff"
        write_generic_pyramid(path, "jpeg")
    else:
        path = small_slide.path
    read = {}
    for backend in BACKENDS:
        with open_slide(path, backend) as reader:
            read[backend] = (
                reader.level_dimensions,
                {r: reader.read_region(r[1:], r[0], SIZE) for r in regions(reader.level_dimensions)},
            )
    dims, reference = read["openslide"]
    for other in ("cucim", "tifffile"):
        assert read[other][0] == dims, other
        for key, region in reference.items():
            # JPEG decoders differ in rounding and chroma upsampling (most on noise), never by a pixel's shift
            theirs = read[other][1][key].astype(int)
            difference = np.abs(theirs - region.astype(int)).mean()
            shifted = np.abs(theirs[1:, 1:] - region[:-1, :-1].astype(int)).mean()
            assert difference < 3.0, (other, key, difference)
            assert difference <= shifted or shifted < 3.0, (other, key, difference, shifted)
