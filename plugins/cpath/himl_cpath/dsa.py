"""Attention annotations on a Digital Slide Archive (DSA), uploaded with girder-client.

Input is a per-tile table such as DeepMIL's ``test_output.csv``: one row per
tile with ``slide_id``, the tile's level-0 top-left corner (``tile_x`` and
``tile_y``, or ``left`` and ``top``), its size (``right``/``bottom`` columns,
else ``--tile-size``) and its ``attention`` (or ``bag_attn``). Each slide
becomes one annotation document of filled rectangles, coloured from blue
(least attention in that slide) to red (most), with the value as label.

The slide's DSA item is found by name: among the items of a folder when a
folder id is given, else through Girder's resource search; the item whose
name, without its extension, is the slide id.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from himl_kernel.errors import HimlError

ENV_URL = "DSA_URL"
ENV_KEY = "DSA_API_KEY"


@dataclass(frozen=True)
class TileAttention:
    x: int
    y: int
    width: int
    height: int
    attention: float


@dataclass
class UploadReport:
    uploaded: dict[str, str] = field(default_factory=dict)  # slide id -> annotation id
    missing: list[str] = field(default_factory=list)


def _column(columns: Sequence[str], *names: str) -> str | None:
    return next((n for n in names if n in columns), None)


def read_attention_table(path: Path, tile_size: int | None = None) -> dict[str, list[TileAttention]]:
    """Tiles and their attention per slide, from a CSV (see the module docstring for its columns)."""
    if not path.is_file():
        raise HimlError(f"attention table {path} does not exist")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        x_col, y_col = _column(columns, "tile_x", "left"), _column(columns, "tile_y", "top")
        value_col = _column(columns, "attention", "bag_attn")
        right_col, bottom_col = _column(columns, "right"), _column(columns, "bottom")
        missing = [
            what
            for what, col in (
                ("slide_id", _column(columns, "slide_id")),
                ("tile_x/left", x_col),
                ("tile_y/top", y_col),
                ("attention/bag_attn", value_col),
            )
            if col is None
        ]
        if missing:
            raise HimlError(f"{path} lacks the columns {', '.join(missing)}; it has: {', '.join(columns)}")
        if (right_col is None or bottom_col is None) and not tile_size:
            raise HimlError(f"{path} has no right/bottom columns: give the tile size in level-0 pixels (--tile-size)")
        assert x_col and y_col and value_col
        slides: dict[str, list[TileAttention]] = {}
        for line, row in enumerate(reader, start=2):
            try:
                x, y = round(float(row[x_col])), round(float(row[y_col]))
                if x < 0 or y < 0:
                    raise ValueError(f"tile {x}, {y} has no level-0 coordinates, so it cannot be drawn on the slide")
                if right_col and bottom_col and row[right_col] and row[bottom_col]:
                    width, height = round(float(row[right_col])) - x, round(float(row[bottom_col])) - y
                elif tile_size:
                    width = height = int(tile_size)
                else:
                    raise ValueError("right/bottom are empty: give the tile size in level-0 pixels (--tile-size)")
                value = float(row[value_col])
            except (TypeError, ValueError) as exc:
                raise HimlError(f"{path} line {line}: {exc}") from exc
            slides.setdefault(row["slide_id"], []).append(TileAttention(x, y, width, height, value))
    return slides


def _colour(value: float, alpha: float = 0.5) -> str:
    red, blue = round(255 * value), round(255 * (1 - value))
    return f"rgba({red},0,{blue},{alpha})"


def annotation_document(slide_id: str, tiles: Sequence[TileAttention], name: str = "attention") -> dict[str, Any]:
    """The DSA (large_image) annotation for one slide's tiles."""
    values = [t.attention for t in tiles]
    low, high = min(values), max(values)
    spread = high - low
    elements = []
    for tile in tiles:
        scaled = (tile.attention - low) / spread if spread > 0 else 1.0
        elements.append(
            {
                "type": "rectangle",
                "center": [tile.x + tile.width / 2, tile.y + tile.height / 2, 0],
                "width": tile.width,
                "height": tile.height,
                "rotation": 0,
                "lineColor": _colour(scaled, 1.0),
                "lineWidth": 1,
                "fillColor": _colour(scaled),
                "label": {"value": f"{tile.attention:.4g}"},
                "user": {"attention": tile.attention},
            }
        )
    return {"name": name, "description": f"tile attention of slide {slide_id}, from himl", "elements": elements}


def _stem(name: str) -> str:
    return name.split(".", 1)[0] if "." in name else name


def find_item(client: Any, slide_id: str, folder_id: str | None) -> str | None:
    """The id of the DSA item for ``slide_id``, or None."""
    if folder_id:
        items = client.listItem(folder_id)
    else:
        found = client.get("resource/search", parameters={"q": slide_id, "types": json.dumps(["item"])})
        items = found.get("item", [])
    for item in items:
        if item.get("name") == slide_id or _stem(str(item.get("name", ""))) == slide_id:
            return str(item["_id"])
    return None


def connect(environ: Mapping[str, str] | None = None, url: str | None = None, api_key: str | None = None) -> Any:
    """A girder-client logged in with ``DSA_URL`` and ``DSA_API_KEY`` (or the given values)."""
    import girder_client  # type: ignore[import-untyped]

    env = os.environ if environ is None else environ
    url = url or env.get(ENV_URL, "")
    api_key = api_key or env.get(ENV_KEY, "")
    if not url:
        raise HimlError(f"no DSA address: set {ENV_URL} (e.g. https://dsa.example.org/api/v1) or pass --dsa-url")
    if not api_key:
        raise HimlError(f"no DSA API key: set {ENV_KEY} (create one under your DSA user's API keys)")
    client = girder_client.GirderClient(apiUrl=url.rstrip("/"))
    try:
        client.authenticate(apiKey=api_key)
    except girder_client.HttpError as exc:
        raise HimlError(f"the DSA at {url} refused the API key: HTTP {exc.status}") from exc
    except Exception as exc:  # connection refused, DNS...
        raise HimlError(f"cannot reach the DSA at {url}: {type(exc).__name__}: {exc}") from exc
    return client


def upload_attention(
    client: Any,
    slides: Mapping[str, Sequence[TileAttention]],
    *,
    folder_id: str | None = None,
    name: str = "attention",
    warn: Callable[[str], None] | None = None,
    show_progress: bool = False,
) -> UploadReport:
    """Post one annotation per slide to its DSA item; slides without an item are listed as missing.

    With ``show_progress``, counts, rate and time left go to stderr.
    """
    from himl_cpath.progress import Progress

    say = warn or (lambda line: None)
    report = UploadReport()
    with Progress("DSA upload", len(slides), "slides", show=show_progress) as progress:
        for slide_id, tiles in slides.items():
            _upload_one(client, slide_id, tiles, folder_id, name, report, say)
            progress.update()
    return report


def _upload_one(
    client: Any,
    slide_id: str,
    tiles: Sequence[TileAttention],
    folder_id: str | None,
    name: str,
    report: UploadReport,
    say: Callable[[str], None],
) -> None:
    import girder_client

    item_id = find_item(client, slide_id, folder_id)
    if item_id is None:
        report.missing.append(slide_id)
        say(f"himl: warning: no DSA item found for slide {slide_id}")
        return
    try:
        created = client.post(
            "annotation", parameters={"itemId": item_id}, json=annotation_document(slide_id, tiles, name)
        )
    except girder_client.HttpError as exc:
        raise HimlError(
            f"the DSA refused the annotation of slide {slide_id}: HTTP {exc.status}: {exc.responseText[:200]}"
        ) from exc
    report.uploaded[slide_id] = str(created.get("_id", "")) if isinstance(created, dict) else ""
