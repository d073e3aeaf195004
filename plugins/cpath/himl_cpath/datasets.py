"""Map-style datasets over slides and tiles; ``torch.utils.data.DataLoader`` takes them as they are.

- :class:`SlideTilesDataset` tiles slides on the fly: item ``i`` is the bag
  of tiles of slide ``i`` (all of them, or a random ``max_tiles`` of them),
  chosen by the same tissue mask and options as offline tiling.
- :class:`TilesDataset` reads a tiles dataset written by ``himl cpath tile``.

Items are dicts of numpy arrays and plain values; images are (3, H, W) uint8,
bags (N, 3, H, W). Neither class imports torch.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from himl_cpath.slide_table import SlideRecord, TileFileBag
from himl_cpath.tiling import Tile, TilingOptions
from himl_kernel.errors import HimlError


class SlideTilesDataset:
    """Bags of tiles cut from slides when they are asked for.

    Args:
        slides: the slides (see :mod:`himl_cpath.slide_table`).
        options: tile size, level, overlap, minimum occupancy, mask level.
        max_tiles: at most this many tiles per bag, drawn at random (seeded
            by ``seed`` and the item index, so a bag is the same every epoch
            unless ``seed`` changes; :meth:`draw` takes another generator);
            ``None`` keeps every tile.
        backend: slide reader backend(s).
        transform: applied to each item dict before it is returned.
    """

    def __init__(
        self,
        slides: Sequence[SlideRecord],
        options: TilingOptions | None = None,
        *,
        max_tiles: int | None = None,
        seed: int = 0,
        backend: str | None = None,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.slides = list(slides)
        self.options = options or TilingOptions()
        self.max_tiles = max_tiles
        self.seed = seed
        self.backend = backend
        self.transform = transform
        self._plans: dict[int, list[Tile]] = {}

    def __len__(self) -> int:
        return len(self.slides)

    def tiles_of(self, index: int) -> list[Tile]:
        """Every kept tile of slide ``index`` (computed once per process)."""
        from himl_cpath.slide import open_slide
        from himl_cpath.tiling import plan_tiles, tissue_mask_for

        if index not in self._plans:
            record = self.slides[index]
            with open_slide(record.image, self.backend) as reader:
                mask = tissue_mask_for(reader, self.options, record.mask)
                self._plans[index] = plan_tiles(reader, mask, self.options)
        return self._plans[index]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.draw(index, np.random.default_rng([self.seed, index]))

    def draw(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        """The bag of slide ``index``, its ``max_tiles`` tiles (when it has more) drawn with ``rng``.

        The item also holds ``extent``, the level-0 side of a tile, and
        ``tile_index``, the position of each tile among all the slide's kept tiles.
        """
        from himl_cpath.slide import open_slide
        from himl_cpath.tiling import group_tiles, read_tiles

        record = self.slides[index]
        tiles = self.tiles_of(index)
        chosen: Sequence[int] = range(len(tiles))
        if self.max_tiles is not None and len(tiles) > self.max_tiles:
            chosen = sorted(rng.choice(len(tiles), size=self.max_tiles, replace=False))
            tiles = [tiles[i] for i in chosen]
        size = self.options.tile_size
        images = np.zeros((len(tiles), 3, size, size), dtype=np.uint8)
        with open_slide(record.image, self.backend) as reader:
            level = reader.check_level(self.options.level)
            extent = round(size * reader.level_downsamples[level])
            blocks = group_tiles(tiles, reader, self.options, block=1)
            for position, (_, pixels) in enumerate(read_tiles(reader, blocks, self.options)):
                images[position] = pixels.transpose(2, 0, 1)
        item: dict[str, Any] = {
            "slide_id": record.slide_id,
            "label": record.label,
            "image": images,
            "tile_x": np.array([t.x for t in tiles], dtype=np.int64),
            "tile_y": np.array([t.y for t in tiles], dtype=np.int64),
            "occupancy": np.array([t.occupancy for t in tiles], dtype=np.float32),
            "extent": extent,
            "tile_index": np.array(chosen, dtype=np.int64),
        }
        return self.transform(item) if self.transform else item


class TilesDataset:
    """The tiles of a tiles dataset folder (its ``dataset.csv`` and images), one item per tile."""

    def __init__(self, root: Path, transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self.root = Path(root)
        with (self.root / "dataset.csv").open(newline="", encoding="utf-8") as handle:
            self.rows = list(csv.DictReader(handle))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from PIL import Image

        row = self.rows[index]
        with Image.open(self.root / row["image"]) as image:
            pixels = np.asarray(image.convert("RGB")).transpose(2, 0, 1)
        item: dict[str, Any] = {
            "slide_id": row["slide_id"],
            "tile_id": row["tile_id"],
            "label": row["label"],
            "image": np.ascontiguousarray(pixels),
            "tile_x": int(row["tile_x"]),
            "tile_y": int(row["tile_y"]),
            "occupancy": float(row["occupancy"]),
        }
        return self.transform(item) if self.transform else item


def read_tile_files(bag: TileFileBag, chosen: Sequence[int]) -> npt.NDArray[np.uint8]:
    from PIL import Image

    images = []
    for index in chosen:
        path = bag.root / bag.images[index]
        try:
            with Image.open(path) as image:
                images.append(np.asarray(image.convert("RGB")).transpose(2, 0, 1))
        except (OSError, ValueError) as exc:
            raise HimlError(f"tile {path} of slide {bag.slide_id} could not be read: {exc}") from exc
    sizes = {image.shape for image in images}
    if len(sizes) > 1:
        raise HimlError(f"the tiles of slide {bag.slide_id} differ in size: {', '.join(map(str, sorted(sizes)))}")
    return np.stack(images)
