"""The folder layouts of two public datasets, so that they work as they come.

- **PANDA** (Prostate cANcer graDe Assessment): ``train.csv`` (image_id,
  data_provider, isup_grade, gleason_score), slides in ``train_images/<id>.tiff``
  and tissue label masks in ``train_label_masks/<id>_mask.tiff``. The slides'
  label is the ISUP grade; the mask, where present, chooses the tiles.
- **TCGA-CRCk** (Kather et al., MSI vs MSS in colorectal cancer): tiles that
  are already cut, in ``CRC_DX_TRAIN`` and ``CRC_DX_TEST``, each with the
  class folders ``MSIMUT`` (label 1) and ``MSS`` (label 0); the file name
  carries the TCGA slide barcode (``blk-<code>-TCGA-AA-3555-01Z-00-DX1.png``).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from himl_cpath.slide_records import SlideRecord, TileFileBag, tile_bags_from_rows
from himl_kernel.errors import HimlError

PANDA_TABLE = "train.csv"
CRCK_SPLITS = {"train": "CRC_DX_TRAIN", "test": "CRC_DX_TEST"}
CRCK_CLASSES = {"MSIMUT": "1", "MSS": "0"}
_TCGA_BARCODE = re.compile(r"(TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}(?:-[A-Z0-9]{2,3}){0,3})")


def is_panda(folder: Path) -> bool:
    return (folder / PANDA_TABLE).is_file() and (folder / "train_images").is_dir()


def panda_slides(folder: Path) -> list[SlideRecord]:
    """The slides of a PANDA folder, labelled with their ISUP grade, with masks where they exist."""
    table = folder / PANDA_TABLE
    if not table.is_file():
        raise HimlError(f"{folder} is not a PANDA folder: it has no {PANDA_TABLE}")
    records = []
    with table.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not {"image_id", "isup_grade"} <= set(reader.fieldnames or []):
            raise HimlError(f"{table} needs the columns image_id and isup_grade")
        for row in reader:
            image_id = row["image_id"]
            mask = folder / "train_label_masks" / f"{image_id}_mask.tiff"
            records.append(
                SlideRecord(
                    slide_id=image_id,
                    image=folder / "train_images" / f"{image_id}.tiff",
                    label=row["isup_grade"],
                    mask=mask if mask.is_file() else None,
                )
            )
    return records


def crck_slide_id(name: str) -> str:
    """The TCGA slide barcode in a TCGA-CRCk tile's file name (the name itself when it has none)."""
    match = _TCGA_BARCODE.search(name)
    return match.group(1) if match else Path(name).stem


def is_crck(folder: Path) -> bool:
    return (folder / CRCK_SPLITS["train"]).is_dir() or (folder / CRCK_SPLITS["test"]).is_dir()


def crck_tile_rows(folder: Path, split: str = "train") -> list[dict[str, str | int | float]]:
    """One tiles-dataset row per tile of one split of a TCGA-CRCk folder; images relative to the split's folder.

    Tile coordinates are not known and are left as -1.
    """
    if split not in CRCK_SPLITS:
        raise HimlError(f"TCGA-CRCk split must be one of {', '.join(CRCK_SPLITS)}, got {split!r}")
    root = folder / CRCK_SPLITS[split]
    if not root.is_dir():
        raise HimlError(f"{folder} is not a TCGA-CRCk folder: it has no {CRCK_SPLITS[split]}")
    rows: list[dict[str, str | int | float]] = []
    for class_name, label in CRCK_CLASSES.items():
        for image in sorted((root / class_name).glob("*.png")):
            rows.append(
                {
                    "slide_id": crck_slide_id(image.name),
                    "tile_id": image.stem,
                    "image": f"{class_name}/{image.name}",
                    "label": label,
                    "tile_x": -1,
                    "tile_y": -1,
                    "occupancy": 1.0,
                }
            )
    if not rows:
        raise HimlError(f"no tiles in {root}/MSIMUT or {root}/MSS")
    return rows


def crck_tiles_table(folder: Path, split: str = "train") -> Path:
    """Write ``dataset.csv`` for one split of a TCGA-CRCk folder, as a tiles dataset, and return its path.

    The table lies in the split's folder (``CRC_DX_TRAIN/dataset.csv``) with
    the tiles dataset columns.
    """
    rows = crck_tile_rows(folder, split)
    table = folder / CRCK_SPLITS[split] / "dataset.csv"
    with table.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return table


def crck_bags(folder: Path) -> tuple[list[TileFileBag], dict[str, str]]:
    """The slides of a TCGA-CRCk folder as bags of their tiles, and their splits.

    ``CRC_DX_TEST`` is the test split, as the dataset defines it;
    ``CRC_DX_TRAIN`` is split into training and validation. Nothing is
    written into the folder (it may be a read-only mount).
    """
    rows: list[dict[str, str]] = []
    for split in ("train", "test"):
        if (folder / CRCK_SPLITS[split]).is_dir():
            for row in crck_tile_rows(folder, split):
                rows.append(
                    {
                        **{key: str(value) for key, value in row.items()},
                        "image": f"{CRCK_SPLITS[split]}/{row['image']}",
                        "split": "test" if split == "test" else "",
                    }
                )
    if not rows:
        raise HimlError(f"{folder} is not a TCGA-CRCk folder: it has neither CRC_DX_TRAIN nor CRC_DX_TEST")
    return tile_bags_from_rows(rows, folder, str(folder))
