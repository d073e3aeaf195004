"""Tile features of a frozen encoder, computed once and kept on disk.

With a frozen encoder a tile's features never change, so each tile is
encoded once and every epoch reads the features instead of the pixels. The
cache is a folder per encoder (its :attr:`~himl_cpath.encoders.TileEncoder.identity`:
model and weights) and tiling (tile size, level, overlap, occupancy, mask
level; or ``tile-files`` for slides given as tile images already cut),
holding one ``SLIDE_ID.pt`` per slide with the features (N, D), each
tile's level-0 ``tile_x``/``tile_y`` and the level-0 side of a tile
(``extent``, -1 when unknown). An entry also records the size and
modification time of the slide file (or of every tile file); a slide whose
files changed is encoded again. Entries are written to a temporary name and
renamed, so an interrupted run leaves no half-written entry.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import Tensor

from himl_cpath.encoders import TileEncoder
from himl_cpath.progress import Progress
from himl_cpath.slide_table import BagSource, TileFileBag
from himl_cpath.tiling import TilingOptions
from himl_kernel.atomic import atomic_write
from himl_kernel.errors import HimlError

#: The cache format; entries of another one are encoded again.
FORMAT = 2


@dataclass(frozen=True)
class SlideFeatures:
    """The cached features of one slide's tiles."""

    slide_id: str
    features: Tensor  # (N, D) float32
    tile_x: Tensor  # (N,) int64, level 0
    tile_y: Tensor  # (N,) int64, level 0
    extent: int = -1  # level-0 side of a tile; -1: unknown

    def in_memory(self) -> SlideFeatures:
        """The same features copied into memory (when they were memory-mapped from the cache file)."""
        return SlideFeatures(
            self.slide_id, self.features.clone(), self.tile_x.clone(), self.tile_y.clone(), self.extent
        )


def tiling_key(options: TilingOptions | None) -> str:
    """A folder name that says how the slides were tiled (``tile-files``: they came as tile images)."""
    if options is None:
        return "tile-files"
    return (
        f"tile{options.tile_size}-level{options.level}-overlap{options.overlap}"
        f"-occupancy{options.min_occupancy:g}-mask{options.mask_level}"
    )


def tiling_of(record: BagSource, options: TilingOptions) -> TilingOptions | None:
    """How a slide's tiles are cut: by ``options`` from a slide file, or not at all (None) for tile files."""
    return None if isinstance(record, TileFileBag) else options


def cache_folder(root: Path, encoder: TileEncoder, options: TilingOptions | None) -> Path:
    """Where the features of ``encoder`` over tiles cut by ``options`` (None: tile files) are kept."""
    return Path(root) / encoder.identity / tiling_key(options)


def _stamp(record: BagSource) -> list[int]:
    """Size and modification time of the file(s) a slide's tiles come from."""
    paths = record.paths() if isinstance(record, TileFileBag) else [record.image]
    stamp = [FORMAT, len(paths)]
    for path in paths:
        info = path.stat()
        stamp += [info.st_size, info.st_mtime_ns]
    return stamp


def _entry_is_current(entry: Path, record: BagSource) -> bool:
    if not entry.is_file():
        return False
    try:
        stored = torch.load(entry, map_location="cpu", weights_only=True)
        return bool(stored.get("stamp") == _stamp(record))
    except Exception:  # an unreadable entry, or a missing tile file, is encoded (and reported) again
        return False


def cache_features(
    records: Sequence[BagSource],
    encoder: TileEncoder,
    options: TilingOptions,
    root: Path,
    *,
    batch_size: int = 64,
    backend: str | None = None,
    workers: int = 2,
    show_progress: bool = False,
) -> tuple[Path, int]:
    """Encode every slide whose entry is missing or stale; the cache folder and how many slides were encoded.

    Slide files go into the folder of ``options``, tile-file bags into the
    ``tile-files`` one; the folder returned is that of the first record.
    Tiles are read and decoded by ``workers`` loader processes while the
    encoder runs (:mod:`himl_cpath.feature_stream`; 0: in this process).
    With ``show_progress``, says on stderr how many slides were cached already
    and shows counts, rate and time left of the encoding.
    """
    from himl_cpath.feature_stream import stream_features
    from himl_cpath.safe_names import check_distinct

    check_distinct((r.slide_id for r in records), "feature cache")
    stale: dict[str, tuple[Path, list[int]]] = {}
    failures: list[str] = []
    for record in records:
        entry = entry_path(cache_folder(root, encoder, tiling_of(record, options)), record.slide_id)
        if not _entry_is_current(entry, record):
            try:  # stamped before reading: a change while it is encoded makes the next run encode it again
                stale[record.slide_id] = (entry, _stamp(record))
            except OSError as exc:
                failures.append(f"{record.slide_id}: {exc.strerror or exc}: {exc.filename}")
    if show_progress:
        print(f"himl: {len(records) - len(stale)} of {len(records)} slides cached in {root}", file=sys.stderr)
    encoded = 0
    counter = Progress("encoding features", len(stale), "slides") if show_progress and stale else None
    todo = [r for r in records if r.slide_id in stale]

    def store(record: BagSource, entry: dict[str, object]) -> None:
        nonlocal encoded
        path, stamp = stale[record.slide_id]
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, partial(torch.save, {**entry, "stamp": stamp}))
        encoded += 1
        if counter is not None:
            counter.update()

    was_training = encoder.training
    encoder.eval()
    try:
        failures += (
            []
            if not todo
            else stream_features(
                todo,
                encoder,
                options,
                store,
                batch_size=batch_size,
                workers=workers,
                backend=backend,
            )
        )
    finally:
        encoder.train(was_training)
        if counter is not None:
            counter.close()
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise HimlError(
            f"could not encode {len(failures)} of {len(records)} slides, the others are cached: {failures[0]}{more}"
        )
    first = tiling_of(records[0], options) if records else options
    return cache_folder(root, encoder, first), encoded


def entry_path(folder: Path, slide_id: str) -> Path:
    """The cache file of one slide: a safe name made from its id (:func:`himl_cpath.safe_names.file_stem`)."""
    from himl_cpath.safe_names import file_stem, inside

    return inside(folder, folder / f"{file_stem(slide_id)}.pt")


def load_features(folder: Path, slide_id: str, *, mmap: bool = False) -> SlideFeatures:
    """One slide's entry from a cache folder; with ``mmap`` its tensors are read from the file as they are used."""
    stored = torch.load(entry_path(Path(folder), slide_id), map_location="cpu", weights_only=True, mmap=mmap)
    return SlideFeatures(
        slide_id, stored["features"], stored["tile_x"], stored["tile_y"], int(stored.get("extent", -1))
    )
