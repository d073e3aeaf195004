"""Lists of slides: a folder and a glob pattern, or a ``dataset.csv``.

A slides ``dataset.csv`` has a column ``image`` (the slide file, relative to
the CSV's folder or absolute) and optionally ``slide_id`` (default: the file
name without its extension), ``label``, ``mask`` (a tissue mask image) and
``patient_id`` (slides of one patient are kept in one split and fold).
A PANDA folder is read by its own layout (:mod:`himl_cpath.conventions`).
The record types come from :mod:`himl_cpath.slide_records` and are importable
from here too.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

from himl_cpath.conventions import is_panda, panda_slides
from himl_cpath.safe_names import check_distinct
from himl_cpath.slide_records import BagSource, SlideRecord, TileFileBag, tile_bags_from_rows
from himl_kernel.errors import HimlError

__all__ = [
    "SLIDE_SUFFIXES",
    "BagSource",
    "SlideRecord",
    "TileFileBag",
    "is_tiles_table",
    "load_slides",
    "read_id_list",
    "slides_from_csv",
    "slides_from_folder",
    "tile_bags_from_csv",
    "tile_bags_from_rows",
]

#: Extensions of the slide formats OpenSlide and tifffile read, for a folder without a pattern.
SLIDE_SUFFIXES = (".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif", ".svslide", ".dcm")


def _slide_id(path: Path) -> str:
    name = path.name
    for suffix in sorted(SLIDE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def slides_from_folder(folder: Path, pattern: str = "") -> list[SlideRecord]:
    """The slides in ``folder`` matching ``pattern`` (``**/*.svs`` recurses); by default every slide file."""
    if not folder.is_dir():
        raise HimlError(f"slide folder {folder} does not exist")
    if pattern:
        files = sorted(p for p in folder.glob(pattern) if p.is_file())
    else:
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SLIDE_SUFFIXES)
    return [SlideRecord(_slide_id(p), p) for p in files]


def slides_from_csv(path: Path) -> list[SlideRecord]:
    """The slides a ``dataset.csv`` lists (columns ``image``, and optionally ``slide_id``, ``label``, ``mask``)."""
    if not path.is_file():
        raise HimlError(f"slides table {path} does not exist")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        if "image" not in columns:
            raise HimlError(f"{path} needs a column 'image'; it has: {', '.join(columns) or '(none)'}")
        records = []
        for row in reader:
            image = path.parent / row["image"]
            mask = row.get("mask") or ""
            records.append(
                SlideRecord(
                    slide_id=row.get("slide_id") or _slide_id(image),
                    image=image,
                    label=row.get("label") or "",
                    mask=path.parent / mask if mask else None,
                    patient_id=(row.get("patient_id") or "").strip(),
                )
            )
    return records


def load_slides(
    source: Path,
    pattern: str = "",
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
) -> list[SlideRecord]:
    """Slides from a folder (with ``pattern``) or a CSV file, filtered by slide id.

    Args:
        source: a folder of slides, a PANDA folder (``train.csv`` and
            ``train_images/``), or a ``dataset.csv``.
        pattern: glob pattern inside a folder (ignored for a CSV).
        include: when not empty, only these slide ids.
        exclude: slide ids to leave out.
    """
    if source.is_file():
        records = slides_from_csv(source)
    elif is_panda(source) and not pattern:
        records = panda_slides(source)
    else:
        records = slides_from_folder(source, pattern)
    seen: set[str] = set()
    for record in records:
        if record.slide_id in seen:
            raise HimlError(f"slide id {record.slide_id!r} appears twice in {source}")
        seen.add(record.slide_id)
    check_distinct((r.slide_id for r in records), str(source))
    wanted = set(include)
    unwanted = set(exclude)
    unknown = sorted((wanted | unwanted) - seen)
    if unknown:
        raise HimlError(f"slide ids not found in {source}: {', '.join(unknown)}")
    return [r for r in records if (not wanted or r.slide_id in wanted) and r.slide_id not in unwanted]


def read_id_list(values: Sequence[str]) -> list[str]:
    """Slide ids from the command line: ids, comma-separated ids, or ``@file`` with one id per line."""
    ids: list[str] = []
    for value in values:
        if value.startswith("@"):
            file = Path(value[1:])
            if not file.is_file():
                raise HimlError(f"slide id list {file} does not exist")
            ids.extend(line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip())
        else:
            ids.extend(part.strip() for part in value.split(",") if part.strip())
    return ids


def is_tiles_table(table: Path) -> bool:
    """Whether a ``dataset.csv`` lists tiles (it has a ``tile_id`` column) rather than slides."""
    with table.open(newline="", encoding="utf-8") as handle:
        return "tile_id" in (csv.DictReader(handle).fieldnames or [])


def tile_bags_from_csv(table: Path) -> tuple[list[TileFileBag], dict[str, str]]:
    """The bags of a tiles ``dataset.csv`` (slide_id, image, label; optional tile_x, tile_y, split)."""
    with table.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"slide_id", "image", "label"} - set(reader.fieldnames or [])
        if missing:
            raise HimlError(f"tiles table {table} needs the columns {', '.join(sorted(missing))}")
        rows = list(reader)
    if not rows:
        raise HimlError(f"tiles table {table} lists no tiles")
    return tile_bags_from_rows(rows, table.parent, str(table))
