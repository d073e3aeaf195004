"""One reader interface over OpenSlide, tifffile (and cuCIM where installed), with fall-through."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from himl_cpath.slide import SlideOpenError, open_slide
from himl_cpath.synthetic import SyntheticSlide

from himl_kernel.errors import HimlError, UnknownNameError


def test_openslide_reads_the_synthetic_slide_as_aperio(small_slide: SyntheticSlide) -> None:
    import openslide

    assert openslide.OpenSlide.detect_format(str(small_slide.path)) == "aperio"
    with open_slide(small_slide.path) as reader:
        assert reader.backend == "openslide"
        assert reader.level_count == 3
        assert reader.dimensions == (2400, 1800)
        assert reader.level_dimensions[1] == (600, 450)
        assert reader.level_downsamples[:2] == (1.0, 4.0)
        assert reader.mpp == (0.5, 0.5)
        assert reader.objective_power == 20.0
        assert "thumbnail" in openslide.OpenSlide(str(small_slide.path)).associated_images


def test_tifffile_backend_reads_the_same_pixels_and_metadata(small_slide: SyntheticSlide) -> None:
    with open_slide(small_slide.path, "openslide") as reference, open_slide(small_slide.path, "tifffile") as other:
        assert other.backend == "tifffile"
        assert other.level_dimensions == reference.level_dimensions
        assert other.mpp == reference.mpp
        assert other.objective_power == reference.objective_power
        for level, location, size in [
            (0, (1000, 700), (300, 200)),
            (1, (400, 800), (128, 96)),
            (0, (2300, 1700), (256, 256)),
        ]:
            np.testing.assert_array_equal(
                other.read_region(location, level, size), reference.read_region(location, level, size)
            )


def test_regions_outside_the_slide_are_white(small_slide: SyntheticSlide) -> None:
    for backend in ("openslide", "tifffile"):
        with open_slide(small_slide.path, backend) as reader:
            region = reader.read_region((2300, 1700), 0, (200, 200))
            assert region.shape == (200, 200, 3)
            assert (region[150:, :] == 255).all(), backend
            assert (region[:, 150:] == 255).all(), backend


def test_thumbnail_keeps_the_aspect_ratio(small_slide: SyntheticSlide) -> None:
    with open_slide(small_slide.path) as reader:
        thumb = reader.thumbnail((200, 200))
    assert thumb.shape == (150, 200, 3)
    assert thumb.dtype == np.uint8


def test_a_backend_that_refuses_passes_the_file_to_the_next(tmp_path: Path) -> None:
    # WebP tiles in a SubIFD pyramid: OpenSlide refuses the compression, tifffile reads it
    path = tmp_path / "plain.tif"
    pixels = np.random.default_rng(0).integers(0, 255, (512, 768, 3), dtype=np.uint8)
    with tifffile.TiffWriter(path) as tif:
        tif.write(
            pixels,
            tile=(256, 256),
            compression="webp",
            compressionargs={"lossless": True},
            photometric="rgb",
            subifds=1,
            metadata=None,
        )
        tif.write(
            pixels[::2, ::2],
            tile=(256, 256),
            compression="webp",
            compressionargs={"lossless": True},
            photometric="rgb",
            subfiletype=1,
            metadata=None,
        )
    with open_slide(path) as reader:
        assert reader.backend == "tifffile"
        assert reader.level_dimensions == ((768, 512), (384, 256))
        np.testing.assert_array_equal(reader.read_region((100, 50), 0, (300, 200)), pixels[50:250, 100:400])
    # cuCIM opens such a file but cannot decode WebP tiles: it refuses at once and the next backend reads it
    with pytest.raises(SlideOpenError, match="cucim: RuntimeError"):
        open_slide(path, "cucim")
    with open_slide(path, ["cucim", "tifffile"]) as reader:
        assert reader.backend == "tifffile"


def test_a_file_no_backend_opens_is_one_line_naming_each_backend(tmp_path: Path) -> None:
    path = tmp_path / "notes.svs"
    path.write_text("not a slide", encoding="utf-8")
    with pytest.raises(SlideOpenError) as caught:
        open_slide(path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    assert [name for name, _ in caught.value.reasons] == ["openslide", "cucim", "tifffile"]
    for name in ("openslide:", "cucim:", "tifffile:"):
        assert name in message


def test_unknown_backend_lists_the_known_ones(small_slide: SyntheticSlide) -> None:
    with pytest.raises(UnknownNameError, match="known: cucim, openslide, tifffile"):
        open_slide(small_slide.path, "openslid")


def test_levels_can_be_counted_from_the_lowest_resolution(small_slide: SyntheticSlide) -> None:
    with open_slide(small_slide.path) as reader:
        lowest = reader.read_level(-1)
        assert lowest.shape[:2] == reader.level_dimensions[-1][::-1]
        with pytest.raises(HimlError, match=r"has levels 0\.\.2; level 5 does not exist"):
            reader.read_level(5)
