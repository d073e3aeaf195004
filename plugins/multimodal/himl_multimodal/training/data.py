"""(image, report) pairs from a CSV (``image``, ``report``) or a folder (each image with a same-named ``.txt``)."""

from __future__ import annotations

import csv
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from himl_kernel.errors import HimlError
from himl_multimodal.image.io import SUFFIXES, load_image
from himl_multimodal.image.transforms import ChestXrayTransform

REPORT_COLUMN = "report"


@dataclass(frozen=True)
class Pair:
    image: Path
    report: str


def read_pairs(source: Path) -> list[Pair]:
    """The pairs of a CSV table (paths relative to it) or of a folder of images with ``.txt`` reports."""
    if source.is_dir():
        pairs = []
        for image in sorted(p for p in source.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()):
            report_file = image.with_suffix(".txt")
            if report_file.is_file() and report_file.read_text().strip():
                pairs.append(Pair(image, report_file.read_text().strip()))
        if not pairs:
            raise HimlError(f"pairs folder {source}: no image with a non-empty same-named .txt report")
        return pairs
    if not source.is_file() or source.suffix.lower() != ".csv":
        raise HimlError(f"pairs {source}: expected a CSV table (image, report) or a folder of images and .txt reports")
    with source.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        for column in ("image", REPORT_COLUMN):
            if column not in columns:
                raise HimlError(f"pairs table {source}: no {column!r} column (columns: {', '.join(columns) or 'none'})")
        pairs = []
        for number, row in enumerate(reader, start=2):
            value, report = (row["image"] or "").strip(), (row[REPORT_COLUMN] or "").strip()
            path = Path(value) if Path(value).is_absolute() else source.parent / value
            if not value or path.suffix.lower() not in SUFFIXES or not path.is_file():
                raise HimlError(f"pairs table {source}, line {number}: {value!r} is not an existing image")
            if not report:
                raise HimlError(f"pairs table {source}, line {number}: empty report")
            pairs.append(Pair(path, report))
    if len(pairs) < 2:
        raise HimlError(f"pairs {source}: {len(pairs)} pair(s); contrastive training needs at least 2")
    return pairs


def words(text: str) -> list[str]:
    """Lower-case words and punctuation marks, as BERT's basic tokenizer splits them."""
    return re.findall(r"[a-z0-9]+|[^\sa-z0-9]", text.lower())


def build_vocabulary(reports: Sequence[str], folder: Path) -> Path:
    """A WordPiece ``vocab.txt`` holding BERT's special tokens, every word of ``reports`` and single characters."""
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    seen = sorted({w for r in reports for w in words(r)})
    characters = sorted(set("abcdefghijklmnopqrstuvwxyz0123456789") - set(seen))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vocab.txt"
    path.write_text("\n".join([*special, *seen, *characters]) + "\n")
    return path


class PairDataset(Dataset[tuple[torch.Tensor, str]]):
    def __init__(self, pairs: Sequence[Pair], transform: Callable[[Any], torch.Tensor]) -> None:
        self.pairs = list(pairs)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        pair = self.pairs[index]
        return self.transform(load_image(pair.image)), pair.report


def split_pairs(pairs: Sequence[Pair], val_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """A seeded random split; validation gets at least 2 pairs when ``val_fraction`` > 0."""
    order = list(pairs)
    random.Random(seed).shuffle(order)
    count = max(2, round(len(order) * val_fraction)) if val_fraction > 0 else 0
    if len(order) - count < 2:
        raise HimlError(f"{len(order)} pairs leave fewer than 2 for training with val_fraction {val_fraction}")
    return order[count:], order[:count]


class PairDataModule(LightningDataModule):
    """Batches of ``{"image": (B, 3, crop, crop), "input_ids", "attention_mask", "report": [...]}``."""

    def __init__(
        self, train: list[Pair], val: list[Pair], transform: ChestXrayTransform, tokenizer: Any, batch_size: int
    ) -> None:
        super().__init__()
        self.train, self.val = train, val
        self.transform, self.tokenizer, self.batch_size = transform, tokenizer, batch_size

    def _collate(self, items: list[tuple[torch.Tensor, str]]) -> dict[str, Any]:
        reports = [report for _, report in items]
        tokens = self.tokenizer(reports, padding="longest", truncation=True, max_length=128, return_tensors="pt")
        images = torch.stack([image for image, _ in items])
        return {
            "image": images,
            "input_ids": tokens.input_ids,
            "attention_mask": tokens.attention_mask,
            "report": reports,
        }

    def train_dataloader(self) -> DataLoader[Any]:
        dataset = PairDataset(self.train, self.transform)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=True, drop_last=False, collate_fn=self._collate)

    def val_dataloader(self) -> DataLoader[Any]:
        dataset = PairDataset(self.val, self.transform)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, collate_fn=self._collate)

    def test_dataloader(self) -> DataLoader[Any]:
        """The held-out pairs (the validation split: there is no separate test split)."""
        return self.val_dataloader()
