"""The loaders of an SSL run: the SSL set and the labelled set, for training and validation."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader
from typing_extensions import override

from himl_ssl.data import ImageDataset


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

    def _loader(self, dataset: ImageDataset, batch_size: int, train: bool) -> DataLoader[Any]:
        return DataLoader(
            dataset,
            batch_size=min(batch_size, len(dataset)) if train and self.drop_last else batch_size,
            shuffle=train,
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
            self._loader(self.head_val, self.head_batch_size, train=False),
        ]

    @override
    def test_dataloader(self) -> Any:
        return self.val_dataloader()
