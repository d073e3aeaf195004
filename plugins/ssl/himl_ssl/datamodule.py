"""The loaders of an SSL run: the SSL set and the labelled set, for training and validation.

Under DDP, Lightning hands every loader a ``DistributedSampler``, which pads
a set whose size the process count does not divide by repeating its first
samples: the evaluator's metrics would count those twice. The labelled
validation set gets :class:`UnpaddedDistributedSampler` instead (Lightning
keeps a sampler that is already distributed), so each image is scored by
exactly one process and the metrics over all processes equal those of one
process on the whole set. The SSL validation set keeps the padding: its
loss gathers the negatives of all processes, which needs batches of one size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from typing_extensions import override

from himl_kernel.errors import HimlError
from himl_ssl.data import ImageDataset


class UnpaddedDistributedSampler(DistributedSampler[int]):
    """Process ``rank``'s share of an evaluation set, in order, every index on exactly one process (no padding)."""

    def __init__(self, dataset: Dataset[Any], num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        size = len(dataset) if isinstance(dataset, Sized) else 0
        if size < num_replicas:
            raise HimlError(f"the labelled validation set has {size} images, fewer than the {num_replicas} processes")
        self.total_size = size
        self.num_samples = len(range(rank, size, num_replicas))

    @override
    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.total_size, self.num_replicas))

    @override
    def __len__(self) -> int:
        return self.num_samples


class SSLDataModule(LightningDataModule):
    """Training: ``{"ssl": ..., "linear_head": ...}`` (the shorter cycles); validation: [SSL set, labelled set]."""

    def __init__(
        self,
        ssl_train: ImageDataset,
        ssl_val: ImageDataset,
        head_train: ImageDataset,
        head_val: ImageDataset,
        ssl_batch_size: int,
        head_batch_size: int,
        num_workers: int = 0,
        drop_last: bool = True,
    ) -> None:
        super().__init__()
        self.ssl_train, self.ssl_val = ssl_train, ssl_val
        self.head_train, self.head_val = head_train, head_val
        self.ssl_batch_size, self.head_batch_size = ssl_batch_size, head_batch_size
        self.num_workers = num_workers
        self.drop_last = drop_last

    def _loader(self, dataset: ImageDataset, batch_size: int, train: bool, unpadded: bool = False) -> DataLoader[Any]:
        sampler: UnpaddedDistributedSampler | None = None
        trainer = self.trainer
        if unpadded and trainer is not None and trainer.world_size > 1:
            sampler = UnpaddedDistributedSampler(dataset, trainer.world_size, trainer.global_rank)
        return DataLoader(
            dataset,
            batch_size=min(batch_size, len(dataset)) if train and self.drop_last else batch_size,
            shuffle=train,
            sampler=sampler,
            drop_last=train and self.drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    @override
    def train_dataloader(self) -> Any:
        return {
            "ssl": self._loader(self.ssl_train, self.ssl_batch_size, train=True),
            "linear_head": self._loader(self.head_train, self.head_batch_size, train=True),
        }

    @override
    def val_dataloader(self) -> Any:
        return [
            self._loader(self.ssl_val, self.ssl_batch_size, train=False),
            self._loader(self.head_val, self.head_batch_size, train=False, unpadded=True),
        ]

    @override
    def test_dataloader(self) -> Any:
        return self.val_dataloader()
