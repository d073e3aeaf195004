"""HelloWorld: the smallest Lightning experiment, and the README's first job.

It writes a noisy 1-D regression dataset (y = 2 x + 1 + noise) as a CSV into
its outputs, fits a linear model with the container's optimizer settings,
logs train and validation loss each epoch, and tests the last checkpoint.
Cross-validation (``--crossval_count 3``) validates each fold on a different
part of the training data. Nothing is downloaded and no GPU is needed.

Training is reproducible to the bit on one machine, also across a preemption:
the data order of each epoch comes from the seed and the epoch number alone
(:class:`EpochShuffleSampler`), not from a random state a restart would lose.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule, LightningModule
from pydantic import Field
from torch.utils.data import DataLoader, Sampler, TensorDataset
from typing_extensions import override

from himl_kernel.atomic import atomic_write_text
from himl_kernel.lightning.container import LightningContainer
from himl_kernel.lightning.loggers import log_learning_rate, log_on_epoch

DATASET_FILE = "dataset.csv"


def write_dataset(path: Path, num_samples: int, noise: float, seed: int) -> None:
    """Samples of y = 2 x + 1 + noise as a CSV with columns x and y (written atomically)."""
    rng = random.Random(seed)
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["x", "y"])
    for _ in range(num_samples):
        x = rng.uniform(-1.0, 1.0)
        writer.writerow([repr(x), repr(2.0 * x + 1.0 + rng.gauss(0.0, noise))])
    atomic_write_text(path, text.getvalue())


def read_dataset(path: Path) -> torch.Tensor:
    """The CSV's rows as an (N, 2) float tensor."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(handle)]
    return torch.tensor(rows, dtype=torch.float32)


class EpochShuffleSampler(Sampler[int]):
    """A shuffle that depends only on ``seed`` and the epoch Lightning sets, so a resumed run sees the same order."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


class HelloDataModule(LightningDataModule):
    """70/15/15 train/val/test split of the CSV; with cross-validation, val is one fold of train+val."""

    def __init__(
        self,
        path: Path,
        *,
        num_samples: int,
        noise: float,
        data_seed: int,
        shuffle_seed: int,
        batch_size: int,
        crossval_count: int = 1,
        crossval_index: int | None = None,
    ) -> None:
        super().__init__()
        self.path = path
        self.num_samples = num_samples
        self.noise = noise
        self.data_seed = data_seed
        self.shuffle_seed = shuffle_seed
        self.batch_size = batch_size
        self.crossval_count = crossval_count
        self.crossval_index = crossval_index
        self.splits: dict[str, torch.Tensor] = {}

    @override
    def prepare_data(self) -> None:  # once per machine
        write_dataset(self.path, self.num_samples, self.noise, self.data_seed)

    @override
    def setup(self, stage: str) -> None:
        rows = read_dataset(self.path)
        n_test = len(rows) * 15 // 100
        test, rest = rows[:n_test], rows[n_test:]
        if self.crossval_count > 1 and self.crossval_index is not None:
            fold = torch.arange(len(rest)) % self.crossval_count
            val, train = rest[fold == self.crossval_index], rest[fold != self.crossval_index]
        else:
            n_val = len(rows) * 15 // 100
            val, train = rest[:n_val], rest[n_val:]
        self.splits = {"train": train, "val": val, "test": test}

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader[Any]:
        data = self.splits[split]
        dataset = TensorDataset(data[:, :1], data[:, 1:])
        if not shuffle:
            return DataLoader(dataset, batch_size=self.batch_size)
        if self.trainer is not None and self.trainer.world_size > 1:
            return DataLoader(dataset, batch_size=self.batch_size, shuffle=True)  # Lightning's DistributedSampler
        return DataLoader(
            dataset, batch_size=self.batch_size, sampler=EpochShuffleSampler(len(dataset), self.shuffle_seed)
        )

    @override
    def train_dataloader(self) -> DataLoader[Any]:
        return self._loader("train", shuffle=True)

    @override
    def val_dataloader(self) -> DataLoader[Any]:
        return self._loader("val")

    @override
    def test_dataloader(self) -> DataLoader[Any]:
        return self._loader("test")


class HelloRegression(LightningModule):
    """y = w x + b, trained with mean squared error."""

    def __init__(self, configure: Callable[[Iterator[torch.nn.Parameter]], Any] | None = None) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(1, 1)
        self._configure = configure

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)  # type: ignore[no-any-return]

    def _loss(self, batch: Any) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self(x), y)

    @override
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train/loss", loss, on_step=True, on_epoch=True, sync_dist=True)
        return loss

    @override
    def on_train_epoch_start(self) -> None:
        log_learning_rate(self)

    @override
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        log_on_epoch(self, "val/loss", self._loss(batch))

    @override
    def test_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        prediction = self(x)
        log_on_epoch(
            self,
            {
                "test/loss": torch.nn.functional.mse_loss(prediction, y),
                "test/mae": torch.nn.functional.l1_loss(prediction, y),
            },
        )

    @override
    def configure_optimizers(self) -> Any:
        if self._configure is not None:
            return self._configure(self.parameters())
        return torch.optim.Adam(self.parameters(), lr=0.1)


class HelloWorld(LightningContainer):
    """Fit y = w x + b to noisy samples of y = 2 x + 1, with Lightning."""

    num_samples: int = Field(400, ge=20, description="rows in the generated CSV")
    noise: float = Field(0.1, ge=0, description="standard deviation of the noise on y")
    data_seed: int = Field(1234, description="seed of the generated data (the same for every fold and seed)")
    batch_size: int = Field(16, ge=1, description="rows per gradient step")
    max_epochs: int = Field(20, ge=1, description="epochs to train for")
    l_rate: float = Field(0.05, gt=0, description="the learning rate at the start of the schedule")
    weight_decay: float = Field(0.0, ge=0, description="weight decay (L2 penalty)")

    @override
    def create_model(self) -> LightningModule:
        return HelloRegression(self.create_optimizers)

    @override
    def get_data_module(self) -> LightningDataModule:
        return HelloDataModule(
            self.outputs_folder / DATASET_FILE,
            num_samples=self.num_samples,
            noise=self.noise,
            data_seed=self.data_seed,
            shuffle_seed=self.effective_random_seed,
            batch_size=self.batch_size,
            crossval_count=self.crossval_count,
            crossval_index=self.crossval_index,
        )
