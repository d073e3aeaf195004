"""Tiles streamed to a frozen encoder: read and decoded in loader workers while the encoder runs.

Filling the feature cache is two passes of a torch ``DataLoader``:

1. planning: for each slide file, its tissue mask and kept tiles, grouped into
   regions read in one call and cut into chunks of about ``batch_size`` tiles;
   a slide given as tile files is cut into runs of ``batch_size`` files;
2. reading: each chunk is one loader item. A worker opens the slide (or the
   tile files), reads and decodes the chunk's tiles into one uint8 batch and
   hands it over through shared memory, while the main process runs the
   encoder over the batches that came before.

Nothing is written to disk but the cache entries: tiles go from the slide
file (or the tiling output's files) straight into the batch. Chunks come
back in order, so a slide's entry is complete, and written, as soon as its
last chunk is encoded. A slide that cannot be read is reported with its id
in one line after the other slides are stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from himl_cpath.slide_records import BagSource, SlideRecord, TileFileBag
from himl_cpath.tiling import TileBlock, TilingOptions
from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from torch import Tensor

    from himl_cpath.encoders import TileEncoder
    from himl_cpath.slide import SlideReader


@dataclass(frozen=True)
class SlidePlan:
    """How one bag's tiles are read: chunks of tile regions (a slide file) or of tile-file indices."""

    index: int  # position of the bag in the list being encoded
    chunks: tuple[tuple[TileBlock, ...], ...] | tuple[range, ...] = ()
    extent: int = -1  # level-0 side of a tile; -1: unknown
    plan_order: tuple[tuple[int, int], ...] = ()  # (x, y) of the kept tiles row by row (slide files)
    error: str = ""


@dataclass(frozen=True)
class Chunk:
    """A batch of decoded tiles of one bag, as a worker hands it over."""

    index: int
    pixels: Any  # (n, 3, H, W) uint8 tensor; None after an error
    tile_x: list[int] = field(default_factory=list)
    tile_y: list[int] = field(default_factory=list)
    error: str = ""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, HimlError) else f"{type(exc).__name__}: {text}"


def block_cells(reader: SlideReader) -> int:
    """Grid cells per side of a region read in one call.

    OpenSlide caches decoded JPEG tiles itself; other readers gain by reading neighbours together.
    """
    return 1 if reader.backend == "openslide" else 4


class _Plans:
    """Loader items: the plan of each bag (a map-style dataset)."""

    def __init__(self, bags: Sequence[BagSource], options: TilingOptions, backend: str | None, batch_size: int):
        self.bags, self.options, self.backend, self.batch_size = list(bags), options, backend, batch_size

    def __len__(self) -> int:
        return len(self.bags)

    def __getitem__(self, index: int) -> SlidePlan:
        bag = self.bags[index]
        try:
            if isinstance(bag, TileFileBag):
                count = len(bag.images)
                runs = tuple(range(s, min(s + self.batch_size, count)) for s in range(0, count, self.batch_size))
                return SlidePlan(index, runs)
            return self._plan_slide(index, bag)
        except Exception as exc:  # reported with the slide's id by the main process
            return SlidePlan(index, error=_one_line(exc))

    def _plan_slide(self, index: int, record: SlideRecord) -> SlidePlan:
        from himl_cpath.slide import open_slide
        from himl_cpath.tiling import chunk_by_tiles, group_tiles, plan_tiles, tissue_mask_for

        options = self.options
        with open_slide(record.image, self.backend) as reader:
            extent = round(options.tile_size * reader.level_downsamples[reader.check_level(options.level)])
            tiles = plan_tiles(reader, tissue_mask_for(reader, options, record.mask), options)
            blocks = group_tiles(tiles, reader, options, block=block_cells(reader))
        chunks = tuple(tuple(run) for run in chunk_by_tiles(blocks, self.batch_size))
        return SlidePlan(index, chunks, extent, tuple((t.x, t.y) for t in tiles))


class _Chunks:
    """Loader items: one chunk of one bag each, decoded into a uint8 batch (a map-style dataset).

    A worker keeps the slide it read last open, since consecutive items
    mostly come from the same slide.
    """

    def __init__(
        self, bags: Sequence[BagSource], plans: Sequence[SlidePlan], options: TilingOptions, backend: str | None
    ):
        self.bags, self.options, self.backend = list(bags), options, backend
        self.items = [(plan.index, chunk) for plan in plans for chunk in plan.chunks]
        self._open: tuple[int, SlideReader] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, item: int) -> Chunk:
        index, chunk = self.items[item]
        bag = self.bags[index]
        try:
            if isinstance(bag, TileFileBag):
                return self._tile_files(index, bag, chunk)  # type: ignore[arg-type]
            return self._regions(index, bag, chunk)  # type: ignore[arg-type]
        except Exception as exc:  # reported with the slide's id by the main process
            return Chunk(index, None, error=_one_line(exc))

    def _tile_files(self, index: int, bag: TileFileBag, chosen: range) -> Chunk:
        import torch

        from himl_cpath.datasets import read_tile_files

        pixels = torch.from_numpy(read_tile_files(bag, chosen))
        return Chunk(index, pixels, [bag.tile_x[i] for i in chosen], [bag.tile_y[i] for i in chosen])

    def _reader(self, index: int, record: SlideRecord) -> SlideReader:
        from himl_cpath.slide import open_slide

        if self._open is not None and self._open[0] == index:
            return self._open[1]
        if self._open is not None:
            self._open[1].close()
            self._open = None
        reader = open_slide(record.image, self.backend)
        self._open = (index, reader)
        return reader

    def _regions(self, index: int, record: SlideRecord, blocks: tuple[TileBlock, ...]) -> Chunk:
        import numpy as np
        import torch

        from himl_cpath.tiling import read_tiles

        reader = self._reader(index, record)
        size = self.options.tile_size
        count = sum(len(block.tiles) for block in blocks)
        batch = np.empty((count, size, size, 3), dtype=np.uint8)
        xs, ys = [], []
        for position, (tile, pixels) in enumerate(read_tiles(reader, list(blocks), self.options)):
            batch[position] = pixels[..., :3]
            xs.append(tile.x)
            ys.append(tile.y)
        return Chunk(index, torch.from_numpy(batch.transpose(0, 3, 1, 2).copy()), xs, ys)


def _loader(dataset: Any, workers: int, prefetch: int = 4) -> Iterator[Any]:
    """The items of ``dataset`` in order, read by ``workers`` processes (0: in this process)."""
    import torch
    from torch.utils.data import DataLoader

    extra: dict[str, Any] = {"prefetch_factor": prefetch} if workers else {}
    # a loader draws its workers' seed from its generator: an own one leaves the run's random state
    # as it was, so a run that fills the cache trains exactly as one that finds it filled
    loader = DataLoader(
        dataset,
        batch_size=None,
        shuffle=False,
        num_workers=min(workers, max(1, len(dataset))) if workers else 0,
        collate_fn=_keep,
        generator=torch.Generator(),
        **extra,
    )
    return iter(loader)


def _keep(item: Any) -> Any:
    return item


def plan_bags(
    bags: Sequence[BagSource], options: TilingOptions, *, batch_size: int, workers: int, backend: str | None
) -> tuple[list[SlidePlan], list[str]]:
    """The reading plan of each bag, made by ``workers`` loader processes, and one line per bag that failed."""
    plans: list[SlidePlan] = []
    failures: list[str] = []
    for plan in _loader(_Plans(bags, options, backend, batch_size), workers):
        if plan.error:
            failures.append(f"{bags[plan.index].slide_id}: {plan.error}")
        else:
            plans.append(plan)
    return plans, failures


def read_chunks(
    bags: Sequence[BagSource], plans: Sequence[SlidePlan], options: TilingOptions, *, workers: int, backend: str | None
) -> Iterator[Chunk]:
    """The decoded chunks of ``plans`` in order, read by ``workers`` loader processes (0: this process)."""
    yield from _loader(_Chunks(bags, plans, options, backend), workers)


@dataclass
class _Pending:
    plan: SlidePlan
    left: int
    features: list[Tensor] = field(default_factory=list)
    tile_x: list[int] = field(default_factory=list)
    tile_y: list[int] = field(default_factory=list)
    error: str = ""


def stream_features(
    bags: Sequence[BagSource],
    encoder: TileEncoder,
    options: TilingOptions,
    store: Callable[[BagSource, dict[str, Any]], None],
    *,
    batch_size: int = 64,
    workers: int = 2,
    backend: str | None = None,
) -> list[str]:
    """Encode every tile of ``bags``; ``store(bag, entry)`` is called for each bag once its tiles are done.

    An entry holds ``features`` (N, D), ``tile_x``/``tile_y`` (N,) and
    ``extent``; the tiles of a slide file come in the order of
    :func:`~himl_cpath.tiling.plan_tiles`, those of tile files in the bag's
    order. ``workers`` loader processes read and decode the tiles (0: this
    process does). Returns one line per bag that could not be read (its id
    and the reason); the others are stored all the same.
    """
    import torch

    if workers < 0:
        raise HimlError(f"encoding workers must be 0 or more, got {workers}")
    bags = list(bags)
    plans, failures = plan_bags(bags, options, batch_size=batch_size, workers=workers, backend=backend)
    pending = {plan.index: _Pending(plan, len(plan.chunks)) for plan in plans}

    def finish(index: int) -> None:
        state = pending.pop(index)
        if state.error:
            failures.append(f"{bags[index].slide_id}: {state.error}")
            return
        features = torch.cat(state.features) if state.features else torch.zeros(0, encoder.num_features)
        xs = torch.tensor(state.tile_x, dtype=torch.int64)
        ys = torch.tensor(state.tile_y, dtype=torch.int64)
        if state.plan.plan_order:  # regions are read block by block; keep the plan's row-by-row order
            place = {xy: i for i, xy in enumerate(state.plan.plan_order)}
            order = torch.tensor(
                sorted(range(len(state.tile_x)), key=lambda i: place[(state.tile_x[i], state.tile_y[i])]),
                dtype=torch.int64,
            )
            features, xs, ys = features[order], xs[order], ys[order]
        store(bags[index], {"features": features, "tile_x": xs, "tile_y": ys, "extent": state.plan.extent})

    for index in [i for i, state in pending.items() if state.left == 0]:  # a bag without tiles
        finish(index)
    with torch.no_grad():
        for chunk in read_chunks(bags, plans, options, workers=workers, backend=backend):
            state = pending[chunk.index]
            if chunk.error:
                state.error = state.error or chunk.error
            elif not state.error:
                state.features.append(encoder(chunk.pixels).detach().float().cpu())
                state.tile_x += chunk.tile_x
                state.tile_y += chunk.tile_y
            state.left -= 1
            if state.left == 0:
                finish(chunk.index)
    return failures
