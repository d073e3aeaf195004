"""On-the-fly tiling of slides, and reading a tiles dataset back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from himl_cpath.datasets import SlideTilesDataset, TilesDataset
from himl_cpath.slide_table import SlideRecord
from himl_cpath.synthetic import SyntheticSlide
from himl_cpath.tiles_dataset import tile_slides
from himl_cpath.tiling import TilingOptions

OPTIONS = TilingOptions(tile_size=128, min_occupancy=0.5)


def test_on_the_fly_bags_hold_the_same_tiles_as_offline_tiling(small_slide: SyntheticSlide, tmp_path: Path) -> None:
    records = [SlideRecord("small", small_slide.path, "1")]
    tile_slides(records, tmp_path / "tiles", OPTIONS)
    offline = TilesDataset(tmp_path / "tiles")
    bag = SlideTilesDataset(records, OPTIONS)[0]

    assert len(offline) == bag["image"].shape[0] > 10
    assert bag["image"].shape[1:] == (3, 128, 128)
    by_place = {(item["tile_x"], item["tile_y"]): item["image"] for item in (offline[i] for i in range(len(offline)))}
    for image, x, y in zip(bag["image"], bag["tile_x"], bag["tile_y"], strict=True):
        np.testing.assert_array_equal(image, by_place[(int(x), int(y))])
    assert bag["slide_id"] == "small" and bag["label"] == "1"


def test_bags_are_sampled_reproducibly_and_load_through_a_torch_dataloader(small_slide: SyntheticSlide) -> None:
    import torch
    from torch.utils.data import DataLoader

    records = [SlideRecord("a", small_slide.path, "1"), SlideRecord("b", small_slide.path, "0")]
    dataset = SlideTilesDataset(records, OPTIONS, max_tiles=8, seed=5)
    first, again = dataset[0], SlideTilesDataset(records, OPTIONS, max_tiles=8, seed=5)[0]
    assert first["image"].shape == (8, 3, 128, 128)
    np.testing.assert_array_equal(first["tile_x"], again["tile_x"])
    other_seed = SlideTilesDataset(records, OPTIONS, max_tiles=8, seed=6)[0]
    assert not np.array_equal(
        np.stack([first["tile_x"], first["tile_y"]]), np.stack([other_seed["tile_x"], other_seed["tile_y"]])
    )
    batches = list(DataLoader(dataset, batch_size=1, num_workers=0))
    assert [b["slide_id"] for b in batches] == [["a"], ["b"]]
    assert isinstance(batches[0]["image"], torch.Tensor) and batches[0]["image"].shape == (1, 8, 3, 128, 128)
