"""Filling the feature cache streams tiles: loader workers read and decode them while the encoder runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from himl_cpath.datasets import read_tile_files
from himl_cpath.encoders import TileEncoder
from himl_cpath.feature_cache import cache_features, load_features
from himl_cpath.slide_table import load_slides, tile_bags_from_csv
from himl_cpath.tiles_dataset import WriteOptions, tile_slides
from himl_cpath.tiling import TilingOptions
from torch import nn

from himl_kernel.errors import HimlError

from .conftest import SlideFolder

READER = "tests.cpath.pid_reader:PidReader"
OPTIONS = TilingOptions(tile_size=128, min_occupancy=0.5)


class _Colours(nn.Module):
    """Mean and spread of each channel: cheap, and different for every tile."""

    num_features = 6

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixels = images.float().flatten(2)
        return torch.cat([pixels.mean(dim=2), pixels.std(dim=2)], dim=1)


def _encoder() -> TileEncoder:
    return TileEncoder("colours", _Colours(), "colours-0", frozen=True)


def _features(folder: Path, slide_id: str) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    entry = load_features(folder, slide_id)
    return entry.features, list(zip(entry.tile_x.tolist(), entry.tile_y.tolist(), strict=True))


def test_workers_read_the_tiles_and_give_what_reading_in_process_gives(
    slide_folder: SlideFolder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = load_slides(slide_folder.table, include=["slide_00", "slide_03", "slide_04"])
    log = tmp_path / "pids.txt"
    monkeypatch.setenv("HIML_TEST_PID_LOG", str(log))
    streamed, count = cache_features(records, _encoder(), OPTIONS, tmp_path / "two", backend=READER, workers=2)
    assert count == 3
    readers = {int(line) for line in log.read_text().split()}
    # two workers planned the slides (tissue masks), two more read the tiles; this process read nothing
    assert len(readers) == 4 and os.getpid() not in readers
    log.unlink()
    local, _ = cache_features(records, _encoder(), OPTIONS, tmp_path / "none", backend=READER, workers=0)
    assert {int(line) for line in log.read_text().split()} == {os.getpid()}
    for record in records:
        features, places = _features(streamed, record.slide_id)
        expected, expected_places = _features(local, record.slide_id)
        assert len(places) > 10 and places == expected_places == sorted(places, key=lambda p: (p[1], p[0]))
        torch.testing.assert_close(features, expected, rtol=0, atol=0)


@pytest.mark.parametrize("image_format", ["png", "jpeg"])
def test_a_tiling_output_is_encoded_from_its_files_without_writing_any(
    slide_folder: SlideFolder, tmp_path: Path, image_format: str
) -> None:
    tiles = tmp_path / "tiles"
    records = load_slides(slide_folder.table, include=["slide_00", "slide_01"])
    tile_slides(records, tiles, OPTIONS, write=WriteOptions(image_format=image_format, jpeg_quality=80))
    before = sorted((p, p.stat().st_mtime_ns) for p in tiles.rglob("*"))
    bags, _ = tile_bags_from_csv(tiles / "dataset.csv")
    folder, count = cache_features(bags, _encoder(), OPTIONS, tmp_path / "cache", batch_size=7, workers=2)
    assert count == 2 and folder.name == "tile-files"
    assert sorted((p, p.stat().st_mtime_ns) for p in tiles.rglob("*")) == before
    for bag in bags:
        assert all(image.endswith(".png" if image_format == "png" else ".jpg") for image in bag.images)
        features, places = _features(folder, bag.slide_id)
        assert places == list(zip(bag.tile_x, bag.tile_y, strict=True))
        pixels = torch.from_numpy(read_tile_files(bag, range(len(bag.images))))
        torch.testing.assert_close(features, _encoder()(pixels))


def test_a_slide_that_cannot_be_read_is_named_and_the_others_are_kept(
    slide_folder: SlideFolder, tmp_path: Path
) -> None:
    records = load_slides(slide_folder.table, include=["slide_01", "slide_11", "slide_02"])
    with pytest.raises(HimlError) as caught:
        cache_features(records, _encoder(), OPTIONS, tmp_path / "cache", workers=2)
    message = str(caught.value)
    assert "\n" not in message and "could not encode 1 of 3 slides" in message and "slide_11:" in message
    readable = [r for r in records if r.slide_id != "slide_11"]
    _, count = cache_features(readable, _encoder(), OPTIONS, tmp_path / "cache", workers=2)
    assert count == 0  # slide_01 and slide_02 were stored before the error


def test_a_negative_worker_count_is_refused(slide_folder: SlideFolder, tmp_path: Path) -> None:
    records = load_slides(slide_folder.table, include=["slide_01"])
    with pytest.raises(HimlError, match="encoding workers must be 0 or more, got -1"):
        cache_features(records, _encoder(), OPTIONS, tmp_path / "cache", workers=-1)
