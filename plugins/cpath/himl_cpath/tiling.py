"""Which tiles of a slide to keep, and reading them.

A tile is ``tile_size`` pixels square at pyramid ``level``; neighbours share
``overlap`` pixels of that level. Its place is always given as the level-0
``(tile_x, tile_y)`` of its top-left corner. A tile is kept when the tissue
mask (Otsu on a low-resolution level, or a given mask image) covers at least
``min_occupancy`` of it.

:func:`plan_tiles` decides the tiles from the mask alone; :func:`read_tiles`
reads them. Where the level's downsample is a whole number, neighbouring
tiles can be read as one region and cut apart (:func:`group_tiles`), which
gives the same pixels as reading each tile with ``read_region`` at its
coordinates, with fewer decodes for readers that keep no tile cache. (At a level whose
downsample is not whole, such as Aperio's 16.02, OpenSlide resamples every
region it reads; there tiles are read one by one, exactly as ``read_region``
returns them.)
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from himl_cpath.slide import SlideReader
    from himl_cpath.tissue import TissueMask


@dataclass(frozen=True)
class TilingOptions:
    """How to cut a slide into tiles."""

    tile_size: int = 224
    level: int = 0
    overlap: int = 0
    min_occupancy: float = 0.5
    mask_level: int = -1

    def __post_init__(self) -> None:
        if self.tile_size <= 0:
            raise HimlError(f"tile size must be positive, got {self.tile_size}")
        if not 0 <= self.overlap < self.tile_size:
            raise HimlError(f"overlap must be at least 0 and less than the tile size, got {self.overlap}")
        if not 0.0 <= self.min_occupancy <= 1.0:
            raise HimlError(f"minimum occupancy must lie in [0, 1], got {self.min_occupancy}")

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class Tile:
    """A kept tile: level-0 top-left corner and the share of tissue in it."""

    x: int
    y: int
    occupancy: float


@dataclass(frozen=True)
class TileBlock:
    """Tiles read together: one region at ``level`` with its level-0 origin and size in level pixels."""

    x: int
    y: int
    width: int
    height: int
    tiles: tuple[Tile, ...]


def tissue_mask_for(reader: SlideReader, options: TilingOptions, mask_path: Path | None = None) -> TissueMask:
    """The mask tiles are chosen by: the given mask image, else Otsu on ``options.mask_level``."""
    from himl_cpath.tissue import mask_from_image, otsu_mask

    if mask_path is not None:
        return mask_from_image(mask_path, reader.dimensions)
    return otsu_mask(reader, options.mask_level)


def plan_tiles(reader: SlideReader, mask: TissueMask, options: TilingOptions) -> list[Tile]:
    """The tiles of ``reader`` with enough tissue, row by row; only tiles wholly inside the slide."""
    level = reader.check_level(options.level)
    downsample = reader.level_downsamples[level]
    level_w, level_h = reader.level_dimensions[level]
    size, stride = options.tile_size, options.tile_size - options.overlap
    extent = size * downsample  # level-0 side of a tile
    tiles = []
    for row in range(max(0, (level_h - size) // stride + 1)):
        y = round(row * stride * downsample)
        for col in range(max(0, (level_w - size) // stride + 1)):
            x = round(col * stride * downsample)
            occupancy = mask.occupancy(x, y, extent, extent)
            if occupancy >= options.min_occupancy and occupancy > 0:
                tiles.append(Tile(x, y, occupancy))
    return tiles


def _whole(value: float) -> bool:
    return abs(value - round(value)) < 1e-9


def group_tiles(tiles: list[Tile], reader: SlideReader, options: TilingOptions, block: int = 4) -> list[TileBlock]:
    """Tiles grouped into regions of up to ``block`` x ``block`` grid cells, each read in one call.

    Where the level's downsample is not a whole number, each tile is its own
    region, so that every tile is exactly what ``read_region`` returns at its coordinates.
    """
    level = reader.check_level(options.level)
    downsample = reader.level_downsamples[level]
    size = options.tile_size
    if not _whole(downsample) or block <= 1:
        return [TileBlock(t.x, t.y, size, size, (t,)) for t in tiles]
    ds = round(downsample)
    span = (size - options.overlap) * ds * block  # level-0 side of a block of grid cells
    groups: dict[tuple[int, int], list[Tile]] = {}
    for tile in tiles:
        groups.setdefault((tile.y // span, tile.x // span), []).append(tile)
    blocks = []
    for key in sorted(groups):
        members = groups[key]
        x0, y0 = min(t.x for t in members), min(t.y for t in members)
        x1, y1 = max(t.x for t in members), max(t.y for t in members)
        blocks.append(TileBlock(x0, y0, (x1 - x0) // ds + size, (y1 - y0) // ds + size, tuple(members)))
    return blocks


def read_tiles(
    reader: SlideReader, blocks: list[TileBlock], options: TilingOptions
) -> Iterator[tuple[Tile, npt.NDArray[np.uint8]]]:
    """Each tile of ``blocks`` with its (tile_size, tile_size, 3) RGB pixels."""
    level = reader.check_level(options.level)
    downsample = reader.level_downsamples[level]
    ds = round(downsample) if _whole(downsample) else downsample
    size = options.tile_size
    for block in blocks:
        region = reader.read_region((block.x, block.y), level, (block.width, block.height))
        for tile in block.tiles:
            if len(block.tiles) == 1:
                yield tile, region
                continue
            left = int((tile.x - block.x) // ds)
            top = int((tile.y - block.y) // ds)
            yield tile, region[top : top + size, left : left + size]


def tile_grid_shape(reader: SlideReader, options: TilingOptions) -> tuple[int, int]:
    """(columns, rows) of the full tile grid at ``options.level``."""
    level = reader.check_level(options.level)
    level_w, level_h = reader.level_dimensions[level]
    stride = options.tile_size - options.overlap
    cols = max(0, (level_w - options.tile_size) // stride + 1)
    rows = max(0, (level_h - options.tile_size) // stride + 1)
    return cols, rows


def split_evenly(items: list[TileBlock], parts: int) -> list[list[TileBlock]]:
    """``items`` cut into at most ``parts`` consecutive runs of similar tile counts."""
    total = sum(len(b.tiles) for b in items)
    return chunk_by_tiles(items, max(1, math.ceil(total / max(1, parts))))


def chunk_by_tiles(items: list[TileBlock], tiles_per_chunk: int) -> list[list[TileBlock]]:
    """``items`` cut into consecutive runs, a new run starting once one holds ``tiles_per_chunk`` tiles."""
    runs: list[list[TileBlock]] = []
    count = tiles_per_chunk  # the first item opens a run
    for item in items:
        if count >= tiles_per_chunk:
            runs.append([])
            count = 0
        runs[-1].append(item)
        count += len(item.tiles)
    return runs
