"""The images a command is given: files, folders (searched recursively) or a CSV table with an ``image`` column."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from himl_kernel.errors import HimlError
from himl_multimodal.image.io import SUFFIXES

IMAGE_COLUMN = "image"


@dataclass(frozen=True)
class ImageItem:
    """One image, with its label when a table gave one."""

    path: Path
    label: str | None = None


def _checked(path: Path, origin: str) -> Path:
    if path.suffix.lower() not in SUFFIXES:
        raise HimlError(f"{origin}: {str(path)!r} is not an image; expected one of {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise HimlError(f"{origin}: image {str(path)!r} does not exist")
    return path


def _from_table(table: Path, label_column: str | None) -> list[ImageItem]:
    with table.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        if IMAGE_COLUMN not in columns:
            raise HimlError(f"table {table}: no {IMAGE_COLUMN!r} column (columns: {', '.join(columns) or 'none'})")
        if label_column and label_column not in columns:
            raise HimlError(f"table {table}: no label column {label_column!r} (columns: {', '.join(columns)})")
        items = []
        for number, row in enumerate(reader, start=2):
            value = (row.get(IMAGE_COLUMN) or "").strip()
            if not value:
                raise HimlError(f"table {table}, line {number}: empty {IMAGE_COLUMN!r}")
            path = Path(value) if Path(value).is_absolute() else table.parent / value
            label = (row.get(label_column) or "").strip() if label_column else None
            items.append(ImageItem(_checked(path, f"table {table}, line {number}"), label))
    return items


def collect_images(sources: list[Path], label_column: str | None = None) -> list[ImageItem]:
    """The images of ``sources`` in a stable order; a table's rows keep their labels."""
    items: list[ImageItem] = []
    for source in sources:
        if source.is_dir():
            found = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
            if not found:
                raise HimlError(f"folder {source} holds no images ({', '.join(SUFFIXES)})")
            items.extend(ImageItem(p) for p in found)
        elif source.suffix.lower() == ".csv" and source.is_file():
            items.extend(_from_table(source, label_column))
        else:
            items.append(ImageItem(_checked(source, "images")))
    if label_column and any(item.label is None for item in items):
        raise HimlError(f"--label-column {label_column!r} needs the images in a CSV table with that column")
    return items
