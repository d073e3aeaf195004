"""Tile attention as GeoJSON that QuPath imports: ``himl cpath export-annotations``.

Each slide of a per-tile table (DeepMIL's ``test_output.csv``; the columns
:func:`himl_cpath.dsa.read_attention_table` reads) becomes one
``<slide>.geojson`` FeatureCollection. Every tile is a Feature whose geometry
is its rectangle in level-0 pixel coordinates (x to the right, y down, as
QuPath and OpenSlide count them), a closed Polygon ring of five points, and
whose properties follow QuPath's conventions: ``objectType`` ``"tile"``, a
``name`` with the tile's corner, and the attention as a measurement
(``measurements: {"attention": value}``). Drag the file onto the slide in
QuPath (or File > Import objects) to see the tiles, and colour them by the
measurement.

File names are made safe from the slide ids (:mod:`himl_cpath.safe_names`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from himl_cpath.dsa import TileAttention
from himl_cpath.progress import Progress
from himl_cpath.safe_names import check_distinct, file_stem, inside
from himl_kernel.atomic import atomic_write_text
from himl_kernel.errors import HimlError

MEASUREMENT = "attention"


def tile_feature(tile: TileAttention) -> dict[str, Any]:
    """One tile as a GeoJSON Feature: its level-0 rectangle, with the attention as a QuPath measurement."""
    x0, y0, x1, y1 = tile.x, tile.y, tile.x + tile.width, tile.y + tile.height
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]},
        "properties": {
            "objectType": "tile",
            "name": f"tile x={tile.x} y={tile.y}",
            "measurements": {MEASUREMENT: tile.attention},
        },
    }


def slide_collection(slide_id: str, tiles: Sequence[TileAttention]) -> dict[str, Any]:
    """The FeatureCollection of one slide's tiles."""
    return {"type": "FeatureCollection", "features": [tile_feature(t) for t in tiles]}


def export_annotations(
    slides: Mapping[str, Sequence[TileAttention]], output: Path, *, show_progress: bool = False
) -> list[Path]:
    """Write one ``.geojson`` per slide into ``output`` (created); the files written, in the table's order."""
    if output.exists() and not output.is_dir():
        raise HimlError(f"annotations output {output} is a file, not a folder; give a folder")
    check_distinct(slides, "attention table")
    output.mkdir(parents=True, exist_ok=True)
    written = []
    with Progress("GeoJSON export", len(slides), "slides", show=show_progress) as progress:
        for slide_id, tiles in slides.items():
            path = inside(output, output / f"{file_stem(slide_id)}.geojson")
            atomic_write_text(path, json.dumps(slide_collection(slide_id, tiles)))
            written.append(path)
            progress.update()
    return written
