"""The image sets SSL trains on and the linear head monitors with, each a list of images with a label.

Layouts read (:func:`find_images`), picked from what the folder holds:

- ``CIFAR10`` / ``CIFAR100``: torchvision's folder (``cifar-10-batches-py`` or
  ``cifar-100-python`` with its pickled batches), never downloaded here;
- ``TCGA_CRCK``: ``CRC_DX_TRAIN`` / ``CRC_DX_TEST``, each with ``MSIMUT`` (1)
  and ``MSS`` (0) tiles; the slide's label is each tile's label;
- ``TilesDataset``: a ``dataset.csv`` as ``himl cpath tile`` writes it
  (``slide_id``, ``image`` relative to the table, ``label``, optionally
  ``split``); without a ``split`` column a tenth of the slides, chosen by a hash
  of the slide id, is the validation set, so no slide is in both;
- ``RSNA``, ``NIH``, ``CheXpert``: chest X-ray folders with DICOM or PNG
  images (see :mod:`himl_ssl.cxr`); an RSNA ``dataset.csv`` is told from a
  tiles table by its columns (``subject``, ``label``);
- ``ImageFolder``: class folders of images (the folder names, sorted, are the
  labels), under ``train/`` and ``val/`` when it has them, else split by a hash of the file name.

Every image is read as RGB and resized to the run's input size, one uint8
``(3, H, W)`` tensor per item: the augmentation happens on whole batches later.
"""

from __future__ import annotations

import csv
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from himl_kernel.errors import HimlError
from himl_ssl.splits import is_validation

DatasetName = Literal[
    "auto", "CIFAR10", "CIFAR100", "TCGA_CRCK", "TilesDataset", "RSNA", "NIH", "CheXpert", "ImageFolder"
]
Split = Literal["train", "val"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
CRCK_SPLITS = {"train": "CRC_DX_TRAIN", "val": "CRC_DX_TEST"}
CRCK_CLASSES = {"MSS": 0, "MSIMUT": 1}
CIFAR_FOLDERS = {"CIFAR10": "cifar-10-batches-py", "CIFAR100": "cifar-100-python"}


@dataclass(frozen=True)
class ImageFiles:
    """Image files and their labels."""

    paths: list[Path]
    labels: list[int]


@dataclass(frozen=True)
class ImageArray:
    """Images held in memory, ``(N, H, W, 3)`` uint8, and their labels."""

    pixels: np.ndarray
    labels: list[int]


Images = ImageFiles | ImageArray


def detect_layout(folder: Path) -> DatasetName:
    """Which of the layouts ``folder`` is."""
    for name, sub in CIFAR_FOLDERS.items():
        if (folder / sub).is_dir():
            return name  # type: ignore[return-value]
    if any((folder / sub).is_dir() for sub in CRCK_SPLITS.values()):
        return "TCGA_CRCK"
    from himl_ssl.cxr import CHEXPERT_TABLES, NIH_TABLE, is_rsna_table

    if (folder / NIH_TABLE).is_file():
        return "NIH"
    if (folder / CHEXPERT_TABLES["train"]).is_file():
        return "CheXpert"
    if (folder / "dataset.csv").is_file():
        return "RSNA" if is_rsna_table(folder / "dataset.csv") else "TilesDataset"
    return "ImageFolder"


def _cifar(folder: Path, name: DatasetName, split: Split) -> ImageArray:
    root = folder / CIFAR_FOLDERS[name]
    if name == "CIFAR10":
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        key = b"labels"
    else:
        files = ["train"] if split == "train" else ["test"]
        key = b"fine_labels"
    chunks, labels = [], []
    for file in files:
        path = root / file
        if not path.is_file():
            raise HimlError(f"{name} folder {root} has no {file}; download it with torchvision first")
        with path.open("rb") as handle:
            entry = pickle.load(handle, encoding="bytes")
        chunks.append(np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels += [int(v) for v in entry[key]]
    return ImageArray(np.concatenate(chunks), labels)


def _crck(folder: Path, split: Split) -> ImageFiles:
    root = folder / CRCK_SPLITS[split]
    paths, labels = [], []
    for class_name, label in CRCK_CLASSES.items():
        for image in sorted((root / class_name).glob("*.png")):
            paths.append(image)
            labels.append(label)
    if not paths:
        raise HimlError(f"no TCGA-CRCk tiles in {root}/MSIMUT or {root}/MSS")
    return ImageFiles(paths, labels)


def _tiles_table(folder: Path, split: Split) -> ImageFiles:
    table = folder / "dataset.csv"
    with table.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"slide_id", "image", "label"} - set(reader.fieldnames or [])
        if missing:
            raise HimlError(f"tiles table {table} needs the columns {', '.join(sorted(missing))}")
        rows = list(reader)
    paths, labels = [], []
    for number, row in enumerate(rows, start=2):
        in_validation = row["split"] in ("val", "test") if row.get("split") else is_validation(row["slide_id"])
        if in_validation != (split == "val"):
            continue
        image = (folder / row["image"]).resolve()
        if not image.is_relative_to(folder.resolve()):
            raise HimlError(f"{table} line {number}: image {row['image']!r} lies outside the table's folder")
        try:
            labels.append(int(float(row["label"])))
        except ValueError:
            raise HimlError(f"{table} line {number}: label {row['label']!r} is not a class number") from None
        paths.append(image)
    if not paths:
        raise HimlError(f"tiles table {table} lists no {split} tiles")
    return ImageFiles(paths, labels)


def _image_folder(folder: Path, split: Split) -> ImageFiles:
    named = {"train": ["train"], "val": ["val", "valid", "test"]}[split]
    has_splits = (folder / "train").is_dir()
    roots = [folder / n for n in named if (folder / n).is_dir()] if has_splits else [folder]
    classes = sorted({p.name for root in roots for p in root.iterdir() if p.is_dir()}) if roots else []
    paths, labels = [], []
    for root in roots:
        groups = [(root / c, i) for i, c in enumerate(classes)] if classes else [(root, 0)]
        for group, label in groups:
            for image in sorted(group.rglob("*")):
                if image.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                if not has_splits and is_validation(image.name) != (split == "val"):
                    continue
                paths.append(image)
                labels.append(label)
    if not paths:
        raise HimlError(f"image folder {folder} holds no {split} images ({', '.join(IMAGE_SUFFIXES)})")
    return ImageFiles(paths, labels)


def find_images(folder: Path, name: DatasetName, split: Split) -> Images:
    """The ``split`` images of the dataset ``folder`` of layout ``name`` ("auto": detected)."""
    if not folder.is_dir():
        raise HimlError(f"dataset folder {folder} does not exist")
    layout = detect_layout(folder) if name == "auto" else name
    if layout in CIFAR_FOLDERS:
        return _cifar(folder, layout, split)
    if layout == "TCGA_CRCK":
        return _crck(folder, split)
    if layout == "TilesDataset":
        return _tiles_table(folder, split)
    if layout in ("RSNA", "NIH", "CheXpert"):
        from himl_ssl import cxr

        reader = {"RSNA": cxr.rsna, "NIH": cxr.nih, "CheXpert": cxr.chexpert}[layout]
        paths, labels = reader(folder, split)
        if not paths:
            raise HimlError(f"{layout} folder {folder} holds no {split} images")
        return ImageFiles(paths, labels)
    return _image_folder(folder, split)


class ImageDataset(Dataset[tuple[Tensor, int]]):
    """The images of a set as uint8 ``(3, size, size)`` tensors, with their labels."""

    def __init__(self, images: Images, size: int) -> None:
        self.images = images
        self.size = size

    def __len__(self) -> int:
        return len(self.images.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        from PIL import Image

        if isinstance(self.images, ImageArray):
            picture = Image.fromarray(self.images.pixels[index])
        elif self.images.paths[index].suffix.lower() == ".dcm":
            from himl_ssl.cxr import read_dicom

            picture = Image.fromarray(read_dicom(self.images.paths[index]))
        else:
            with Image.open(self.images.paths[index]) as opened:
                picture = opened.convert("RGB")
        if picture.size != (self.size, self.size):
            picture = picture.resize((self.size, self.size), Image.Resampling.BILINEAR)
        pixels = torch.from_numpy(np.asarray(picture, dtype=np.uint8).copy()).permute(2, 0, 1)
        return pixels.contiguous(), self.images.labels[index]

    @property
    def num_classes(self) -> int:
        return max(self.images.labels) + 1


def download_cifar(folder: Path, name: DatasetName) -> None:
    """Fetch CIFAR-10 or CIFAR-100 into ``folder`` in torchvision's layout (only when a user asks for it).

    A folder that already holds the set is left alone; without a network the
    failure is one line saying where to put the files by hand.
    """
    if name not in CIFAR_FOLDERS:
        raise HimlError(f"only CIFAR10 and CIFAR100 can be downloaded; the dataset is {name}")
    if (folder / CIFAR_FOLDERS[name]).is_dir():
        return
    import urllib.error

    from torchvision import datasets  # type: ignore[import-untyped]

    folder.mkdir(parents=True, exist_ok=True)
    dataset_class = datasets.CIFAR10 if name == "CIFAR10" else datasets.CIFAR100
    try:
        dataset_class(str(folder), train=True, download=True)
    except (urllib.error.URLError, OSError) as error:
        raise HimlError(
            f"cannot download {name} into {folder} ({str(error).splitlines()[0]}); "
            f"put torchvision's {CIFAR_FOLDERS[name]} folder there by hand"
        ) from None
