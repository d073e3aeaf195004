"""The data of DeepMIL: slide splits, bags of cached features or of tile images, and padded batches.

A bag is one slide: its label and its tiles, either as cached features
(N, D) of a frozen encoder (:mod:`himl_cpath.feature_cache`) or as tile
images (N, 3, H, W) for an encoder that is trained too. A slide is a slide
file (:class:`~himl_cpath.slide_table.SlideRecord`), whose tiles are cut on
the fly, or a group of tile images already cut (:class:`TileFileBag`, the
rows of a tiles dataset, such as TCGA-CRCk's, that share a slide id).
:func:`collate_bags` pads the bags of a batch to the longest one and adds a
``mask`` (True for real tiles), which is what the pooling layers take.

With ``patient_bags`` a bag is a patient instead: every cached tile of all
of the patient's slides (:class:`PatientBags`), whose slides must share one
label; slides without a ``patient_id`` stay bags of their own.

In training a bag of more than ``max_bag_size`` tiles gets a new random
subset of them each epoch, drawn from torch's generator (which Lightning
seeds); in validation and test the subset is fixed by the seed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from typing_extensions import override

from himl_cpath.datasets import read_tile_files
from himl_cpath.feature_cache import SlideFeatures
from himl_cpath.slide_table import BagSource, SlideRecord, TileFileBag
from himl_cpath.tiling import TilingOptions
from himl_kernel.errors import HimlError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class LabelledSlide:
    """A slide (a slide file or a group of tile files) with its class index."""

    record: BagSource
    label: int


@dataclass
class SlideSplits:
    """The slides of each split."""

    train: list[LabelledSlide] = field(default_factory=list)
    val: list[LabelledSlide] = field(default_factory=list)
    test: list[LabelledSlide] = field(default_factory=list)

    def of(self, split: str) -> list[LabelledSlide]:
        return list(getattr(self, split))


def class_indices(records: Sequence[BagSource], num_classes: int) -> list[LabelledSlide]:
    """Each slide's label as a class index in [0, num_classes); a slide without one is an error."""
    labelled = []
    for record in records:
        try:
            label = int(float(record.label))
        except ValueError:
            raise HimlError(
                f"slide {record.slide_id}: label {record.label!r} is not a class index 0..{num_classes - 1}"
            ) from None
        if not 0 <= label < num_classes:
            raise HimlError(f"slide {record.slide_id}: label {label} is outside 0..{num_classes - 1}")
        labelled.append(LabelledSlide(record, label))
    return labelled


def patient_groups(slides: Sequence[LabelledSlide]) -> list[list[LabelledSlide]]:
    """The slides grouped by patient, in first-seen order; a slide without a ``patient_id`` is a group alone."""
    groups: dict[str, list[LabelledSlide]] = {}
    for slide in slides:
        patient = slide.record.patient_id
        groups.setdefault(f"patient:{patient}" if patient else f"slide:{slide.record.slide_id}", []).append(slide)
    return list(groups.values())


def _group_key(group: list[LabelledSlide]) -> str:
    return group[0].record.patient_id or group[0].record.slide_id


def split_slides(
    slides: Sequence[LabelledSlide],
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    fixed: dict[str, str] | None = None,
    crossval_count: int = 1,
    crossval_index: int | None = None,
) -> SlideSplits:
    """Train, validation and test slides.

    Slides named in ``fixed`` (slide id -> split, from a ``split`` column or
    a dataset's own test folder) go where it says. The rest are shuffled with
    ``seed`` within each class and dealt out by the fractions, so every split
    keeps the class balance; but a split that ``fixed`` already fills (TCGA-CRCk's
    test slides, say) gets no more slides by its fraction. With
    cross-validation the test slides stay the same and fold
    ``crossval_index`` of the remaining ones is the validation set.

    Slides that share a ``patient_id`` are dealt out together, by the class
    of the patient's first slide, so a patient's slides never straddle two
    splits or two folds (fractions then count patients).
    """
    fixed = fixed or {}
    if "test" in fixed.values():
        test_fraction = 0.0
    if "val" in fixed.values():
        val_fraction = 0.0
        crossval_count = 1  # the validation slides are given
    splits = SlideSplits()
    free: dict[int, list[list[LabelledSlide]]] = {}
    for group in patient_groups(slides):
        places = {fixed.get(slide.record.slide_id, "") for slide in group} - {""}
        if len(places) > 1:
            raise HimlError(
                f"patient {group[0].record.patient_id}: its slides are given different splits: "
                f"{', '.join(sorted(places))}"
            )
        if places:
            where = places.pop()
            if where not in SPLITS:
                raise HimlError(f"slide {group[0].record.slide_id}: split {where!r} is not one of {', '.join(SPLITS)}")
            getattr(splits, where).extend(group)
        else:
            free.setdefault(group[0].label, []).append(group)
    rng = random.Random(seed)
    for label in sorted(free):
        members = sorted(free[label], key=_group_key)
        rng.shuffle(members)
        n_test = round(len(members) * test_fraction)
        splits.test += [slide for group in members[:n_test] for slide in group]
        rest = members[n_test:]
        if crossval_count > 1 and crossval_index is not None:
            for position, group in enumerate(rest):
                (splits.val if position % crossval_count == crossval_index else splits.train).extend(group)
        else:
            n_val = round(len(members) * val_fraction)
            splits.val += [slide for group in rest[:n_val] for slide in group]
            splits.train += [slide for group in rest[n_val:] for slide in group]
    for name in SPLITS:
        if not splits.of(name):
            raise HimlError(f"no slides for the {name} split: {len(slides)} slides are too few for these fractions")
    return splits


#: Bytes of cached features a FeatureBags keeps in memory; slides beyond it are read from disk each time.
FEATURE_MEMORY_BUDGET = 4 << 30


class FeatureBags(Dataset[dict[str, Any]]):
    """Bags of cached tile features; in training, at most ``max_bag_size`` tiles drawn at random each time.

    The features of the first slides, up to ``memory_budget`` bytes, are
    kept in memory; the rest are read (memory-mapped) from the cache each
    time they are asked for, so that a large dataset (PANDA's 10,000 slides)
    does not have to fit in memory. Every entry is opened once here, to find
    slides without tiles before training starts.
    """

    def __init__(
        self,
        folder: Path,
        slides: Sequence[LabelledSlide],
        max_bag_size: int = 0,
        memory_budget: int = FEATURE_MEMORY_BUDGET,
    ) -> None:
        from himl_cpath.feature_cache import load_features

        self.folder = Path(folder)
        self.slides = list(slides)
        self.max_bag_size = max_bag_size
        self.kept: dict[int, SlideFeatures] = {}
        used = 0
        empty = []
        for index, slide in enumerate(self.slides):
            bag = load_features(self.folder, slide.record.slide_id, mmap=True)
            if len(bag.features) == 0:
                empty.append(bag.slide_id)
            size = bag.features.numel() * bag.features.element_size()
            if used + size <= memory_budget:
                self.kept[index] = bag.in_memory()
                used += size
        if empty:
            raise HimlError(f"slides without any tile that has enough tissue: {', '.join(empty)}")

    def bag(self, index: int) -> SlideFeatures:
        """The cached features of slide ``index``, from memory or from disk."""
        from himl_cpath.feature_cache import load_features

        kept = self.kept.get(index)
        return kept if kept is not None else load_features(self.folder, self.slides[index].record.slide_id, mmap=True)

    def __len__(self) -> int:
        return len(self.slides)

    def __getitem__(self, index: int) -> dict[str, Any]:
        bag = self.bag(index)
        chosen = torch.arange(len(bag.features))
        if 0 < self.max_bag_size < len(chosen):
            chosen = torch.randperm(len(chosen))[: self.max_bag_size].sort().values
        return {
            "slide_id": bag.slide_id,
            "label": self.slides[index].label,
            "features": bag.features[chosen],
            "tile_x": bag.tile_x[chosen],
            "tile_y": bag.tile_y[chosen],
            "tile_index": chosen,
            "extent": bag.extent,
        }


def patient_bag_groups(slides: Sequence[LabelledSlide]) -> list[list[int]]:
    """Indices of ``slides`` grouped by patient, for patient-level bags; a patient's slides must share a label.

    A slide without a ``patient_id`` is a bag of its own.
    """
    position = {id(slide): index for index, slide in enumerate(slides)}
    groups = []
    for group in patient_groups(slides):
        labels = {slide.label for slide in group}
        if len(labels) > 1:
            shown = ", ".join(f"{slide.record.slide_id} ({slide.label})" for slide in group)
            raise HimlError(
                f"patient {group[0].record.patient_id}: its slides have different labels, so they cannot form "
                f"one patient-level bag: {shown}"
            )
        groups.append([position[id(slide)] for slide in group])
    return groups


class PatientBags(Dataset[dict[str, Any]]):
    """Bags of every cached tile of a patient's slides (patient-level bags), from per-slide :class:`FeatureBags`.

    The bag's ``slide_id`` is the patient id (a slide's own id when it has
    none); ``tile_slide`` names the slide of each tile, whose ``tile_x`` and
    ``tile_y`` are that slide's level-0 coordinates and ``tile_index`` its
    place in that slide's entry. In training, at most ``max_bag_size`` tiles
    of the whole patient are drawn at random each time.
    """

    def __init__(self, slides: FeatureBags, max_bag_size: int = 0) -> None:
        self.slides = slides
        self.max_bag_size = max_bag_size
        self.groups = patient_bag_groups(slides.slides)

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index: int) -> dict[str, Any]:
        members = [self.slides.bag(i) for i in self.groups[index]]
        first = self.slides.slides[self.groups[index][0]]
        features = torch.cat([bag.features for bag in members])
        names = [bag.slide_id for bag in members for _ in range(len(bag.features))]
        chosen = torch.arange(len(features))
        if 0 < self.max_bag_size < len(chosen):
            chosen = torch.randperm(len(chosen))[: self.max_bag_size].sort().values
        extents = {bag.extent for bag in members}
        return {
            "slide_id": first.record.patient_id or first.record.slide_id,
            "label": first.label,
            "features": features[chosen],
            "tile_x": torch.cat([bag.tile_x for bag in members])[chosen],
            "tile_y": torch.cat([bag.tile_y for bag in members])[chosen],
            "tile_index": torch.cat([torch.arange(len(bag.features)) for bag in members])[chosen],
            "tile_slide": [names[i] for i in chosen.tolist()],
            "extent": extents.pop() if len(extents) == 1 else -1,
        }


def _random_generator() -> np.random.Generator:
    """A numpy generator seeded from torch's, so that Lightning's seeding (and each loader worker's) applies."""
    return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))


class ImageBags(Dataset[dict[str, Any]]):
    """Bags of tile images, cut from the slides or read from tile files as they are asked for.

    For an encoder that is trained too. With ``resample`` (training) a bag
    larger than ``max_bag_size`` gets a new random subset each time; without
    it, the subset is fixed by ``seed``.
    """

    def __init__(
        self,
        slides: Sequence[LabelledSlide],
        options: TilingOptions,
        max_bag_size: int = 0,
        seed: int = 0,
        backend: str | None = None,
        resample: bool = False,
    ) -> None:
        from himl_cpath.datasets import SlideTilesDataset

        self.slides = list(slides)
        self.max_bag_size = max_bag_size
        self.seed = seed
        self.resample = resample
        records: list[SlideRecord] = []
        self._position: dict[int, int] = {}  # index of a slide file -> its index in the on-the-fly tiler
        for index, slide in enumerate(self.slides):
            if isinstance(slide.record, SlideRecord):
                self._position[index] = len(records)
                records.append(slide.record)
        self.tiles = SlideTilesDataset(
            records,
            options,
            max_tiles=max_bag_size or None,
            seed=seed,
            backend=backend,
        )

    def __len__(self) -> int:
        return len(self.slides)

    def _generator(self, index: int) -> np.random.Generator:
        return _random_generator() if self.resample else np.random.default_rng([self.seed, index])

    def __getitem__(self, index: int) -> dict[str, Any]:
        slide = self.slides[index]
        record = slide.record
        if isinstance(record, TileFileBag):
            chosen: Sequence[int] = range(len(record.images))
            if 0 < self.max_bag_size < len(record.images):
                chosen = sorted(self._generator(index).choice(len(record.images), self.max_bag_size, replace=False))
            item: dict[str, Any] = {
                "slide_id": record.slide_id,
                "image": read_tile_files(record, chosen),
                "tile_x": np.array([record.tile_x[i] for i in chosen], dtype=np.int64),
                "tile_y": np.array([record.tile_y[i] for i in chosen], dtype=np.int64),
                "tile_index": np.array(chosen, dtype=np.int64),
                "extent": -1,
            }
        else:
            item = self.tiles.draw(self._position[index], self._generator(index))
        if len(item["image"]) == 0:
            raise HimlError(f"slide {item['slide_id']} has no tile with enough tissue")
        return {
            "slide_id": item["slide_id"],
            "label": slide.label,
            "images": torch.from_numpy(item["image"]),
            "tile_x": torch.from_numpy(item["tile_x"]),
            "tile_y": torch.from_numpy(item["tile_y"]),
            "tile_index": torch.from_numpy(item["tile_index"]),
            "extent": int(item["extent"]),
        }


def collate_bags(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Bags padded with zeros to the longest one, a ``mask`` of the real tiles, labels as a tensor."""
    key = "features" if "features" in items[0] else "images"
    lengths = [len(item[key]) for item in items]
    longest = max(lengths)
    mask = torch.zeros(len(items), longest, dtype=torch.bool)
    for row, length in enumerate(lengths):
        mask[row, :length] = True

    def pad(name: str) -> Tensor:
        first: Tensor = items[0][name]
        out = torch.zeros((len(items), longest, *first.shape[1:]), dtype=first.dtype)
        for row, item in enumerate(items):
            out[row, : len(item[name])] = item[name]
        return out

    return {
        "slide_id": [item["slide_id"] for item in items],
        "label": torch.tensor([item["label"] for item in items], dtype=torch.int64),
        key: pad(key),
        "tile_x": pad("tile_x"),
        "tile_y": pad("tile_y"),
        **({"tile_index": pad("tile_index")} if "tile_index" in items[0] else {}),
        **({"tile_slide": [item["tile_slide"] for item in items]} if "tile_slide" in items[0] else {}),
        "extent": torch.tensor([int(item.get("extent", -1)) for item in items], dtype=torch.int64),
        "mask": mask,
    }


class DeepMILDataModule(LightningDataModule):
    """Bags for each split: cached features when ``feature_cache`` is given, else tile images."""

    def __init__(
        self,
        splits: SlideSplits,
        *,
        options: TilingOptions,
        batch_size: int,
        max_bag_size: int = 0,
        max_bag_size_inference: int = 0,
        feature_cache: Path | None = None,
        prepare: Any = None,
        seed: int = 0,
        backend: str | None = None,
        num_workers: int = 0,
        patient_bags: bool = False,
    ) -> None:
        super().__init__()
        if patient_bags and feature_cache is None:
            raise HimlError("patient-level bags need the feature cache (a frozen encoder): drop --tune_encoder")
        self.patient_bags = patient_bags
        self.splits = splits
        self.num_workers = num_workers
        self.options = options
        self.batch_size = batch_size
        self.max_bag_size = max_bag_size
        self.max_bag_size_inference = max_bag_size_inference
        self.feature_cache = feature_cache
        self._prepare = prepare
        self.seed = seed
        self.backend = backend
        self.datasets: dict[str, Dataset[dict[str, Any]]] = {}

    @override
    def prepare_data(self) -> None:  # once per machine (fit and test both ask): fill the feature cache
        if self._prepare is not None:
            prepare, self._prepare = self._prepare, None
            prepare()

    def _dataset(self, split: str) -> Dataset[dict[str, Any]]:
        if split not in self.datasets:
            size = self.max_bag_size if split == "train" else self.max_bag_size_inference
            slides = self.splits.of(split)
            if self.feature_cache is not None:
                if self.patient_bags:
                    self.datasets[split] = PatientBags(FeatureBags(self.feature_cache, slides), size)
                else:
                    self.datasets[split] = FeatureBags(self.feature_cache, slides, size)
            else:
                self.datasets[split] = ImageBags(
                    slides, self.options, size, self.seed, self.backend, resample=split == "train"
                )
        return self.datasets[split]

    def _loader(self, split: str) -> DataLoader[dict[str, Any]]:
        # cached features are in memory already; worker processes help only where tiles are read
        workers = 0 if self.feature_cache is not None else self.num_workers
        return DataLoader(
            self._dataset(split),
            batch_size=self.batch_size,
            shuffle=split == "train",
            collate_fn=collate_bags,
            num_workers=workers,
            persistent_workers=workers > 0,
        )

    @override
    def train_dataloader(self) -> DataLoader[dict[str, Any]]:
        return self._loader("train")

    @override
    def val_dataloader(self) -> DataLoader[dict[str, Any]]:
        return self._loader("val")

    @override
    def test_dataloader(self) -> DataLoader[dict[str, Any]]:
        return self._loader("test")
