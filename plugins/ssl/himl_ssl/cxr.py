"""Chest X-ray folders in the layouts of the three public sets hi-ml's SSL configurations use.

- ``RSNA`` (Kaggle's RSNA Pneumonia Detection Challenge, as hi-ml expects it):
  ``dataset.csv`` with the columns ``subject`` and ``label`` (1: pneumonia),
  the images ``SUBJECT.dcm`` (or ``.png``) beside it;
- ``NIH`` (NIH Chest X-ray 14, as Kaggle ships it): ``Data_Entry_2017.csv``
  with ``Image Index``, ``Finding Labels`` and ``Patient ID``; the images
  anywhere below the folder (``images_001/images/...``). The label is 1 when
  the findings name pneumonia, consolidation or infiltration; ``test_list.txt``,
  when present, is the validation set, else a tenth of the patients (by a hash);
- ``CheXpert``: ``train.csv`` and ``valid.csv`` with ``Path`` (relative to the
  folder, or to its parent when it starts with the folder's own name) and the
  ``Pneumonia`` column (1: positive; uncertain, negative or blank: 0).

Images are DICOM or PNG/JPEG; a DICOM's pixels are scaled from their
minimum and maximum to 0-255 (inverted when MONOCHROME1). Every image path
named by a table must stay inside the folder.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Literal

import numpy as np

from himl_kernel.errors import HimlError
from himl_ssl.splits import is_validation

Split = Literal["train", "val"]
CXR_SUFFIXES = (".dcm", ".png", ".jpg", ".jpeg")
NIH_TABLE = "Data_Entry_2017.csv"
NIH_POSITIVE = ("pneumonia", "consolidation", "infiltration")
CHEXPERT_TABLES = {"train": "train.csv", "val": "valid.csv"}


def is_rsna_table(table: Path) -> bool:
    """Whether ``dataset.csv`` is RSNA's (``subject``, ``label``) rather than a tiles table."""
    with table.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle), [])
    return "subject" in header and "label" in header and "image" not in header


def _rows(table: Path, needed: set[str]) -> list[dict[str, str]]:
    with table.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = needed - set(reader.fieldnames or [])
        if missing:
            raise HimlError(f"{table} needs the columns {', '.join(sorted(missing))}")
        return list(reader)


def _inside(folder: Path, candidate: Path, table: Path, line: int, value: str) -> Path:
    resolved = candidate.resolve()
    if not resolved.is_relative_to(folder.resolve()):
        raise HimlError(f"{table} line {line}: image {value!r} lies outside the dataset folder {folder}")
    return resolved


def _label(table: Path, line: int, value: str) -> int:
    try:
        return int(float(value)) if value.strip() else 0
    except ValueError:
        raise HimlError(f"{table} line {line}: label {value!r} is not a number") from None


def rsna(folder: Path, split: Split) -> tuple[list[Path], list[int]]:
    table = folder / "dataset.csv"
    paths, labels = [], []
    for line, row in enumerate(_rows(table, {"subject", "label"}), start=2):
        subject = row["subject"].strip()
        if is_validation(subject) != (split == "val"):
            continue
        found = [
            folder / f"{subject}{suffix}" for suffix in (".dcm", ".png") if (folder / f"{subject}{suffix}").is_file()
        ]
        if not found:
            raise HimlError(f"{table} line {line}: no image {subject}.dcm or {subject}.png in {folder}")
        paths.append(_inside(folder, found[0], table, line, subject))
        labels.append(1 if _label(table, line, row["label"]) > 0 else 0)
    return paths, labels


def nih(folder: Path, split: Split) -> tuple[list[Path], list[int]]:
    table = folder / NIH_TABLE
    rows = _rows(table, {"Image Index", "Finding Labels", "Patient ID"})
    listed = folder / "test_list.txt"
    validation = set(listed.read_text(encoding="utf-8").split()) if listed.is_file() else None
    by_name = {p.name: p for p in folder.rglob("*") if p.suffix.lower() in CXR_SUFFIXES}
    paths, labels = [], []
    for line, row in enumerate(rows, start=2):
        name = row["Image Index"].strip()
        in_val = name in validation if validation is not None else is_validation(row["Patient ID"].strip())
        if in_val != (split == "val"):
            continue
        if name not in by_name:
            raise HimlError(f"{table} line {line}: image {name!r} is nowhere under {folder}")
        paths.append(_inside(folder, by_name[name], table, line, name))
        findings = row["Finding Labels"].lower()
        labels.append(int(any(word in findings for word in NIH_POSITIVE)))
    return paths, labels


def chexpert(folder: Path, split: Split) -> tuple[list[Path], list[int]]:
    table = folder / CHEXPERT_TABLES[split]
    if not table.is_file():
        raise HimlError(f"CheXpert folder {folder} has no {table.name}")
    paths, labels = [], []
    for line, row in enumerate(_rows(table, {"Path", "Pneumonia"}), start=2):
        relative = Path(row["Path"].strip())
        base = folder.parent if relative.parts and relative.parts[0] == folder.name else folder
        image = _inside(folder, base / relative, table, line, row["Path"])
        if not image.is_file():
            raise HimlError(f"{table} line {line}: image {row['Path']!r} does not exist")
        paths.append(image)
        labels.append(1 if _label(table, line, row["Pneumonia"]) == 1 else 0)
    return paths, labels


def read_dicom(path: Path) -> np.ndarray:
    """A DICOM image as ``(H, W, 3)`` uint8: its pixels scaled from their range to 0-255."""
    import pydicom

    try:
        dataset = pydicom.dcmread(path)
        pixels = np.asarray(dataset.pixel_array, dtype=np.float64)
    except Exception as error:  # pydicom raises many kinds for unreadable files
        raise HimlError(f"DICOM file {path} cannot be read: {str(error).splitlines()[0]}") from None
    if pixels.ndim == 3 and pixels.shape[-1] not in (3, 4):
        pixels = pixels[0]  # a multi-frame file: its first frame
    low, high = float(pixels.min()), float(pixels.max())
    scaled = (pixels - low) / (high - low) * 255 if high > low else np.zeros_like(pixels)
    if getattr(dataset, "PhotometricInterpretation", "") == "MONOCHROME1":
        scaled = 255 - scaled
    grey = scaled.astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2) if grey.ndim == 2 else grey[..., :3]
