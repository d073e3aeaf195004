"""A container written as hi-ml's users write them, for tests/lightning/test_himl_style.py.

The model and data are ``pytorch_lightning`` classes (the package name hi-ml
uses), the container sets its fields in ``__init__`` after
``super().__init__()``, and the tests name it by its dotted path,
``--model tests.lightning.himl_style.HimlStyleRegression``: no entry point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from himl_kernel.lightning import LightningContainer

#: What the model writes to the working directory at the end of testing.
PREDICTIONS_FILE = "test_predictions.csv"


class LineData(pl.LightningDataModule):
    """y = 3x - 1 with a little noise, split into train, val and test."""

    def __init__(self, folder: Path | None, seed: int) -> None:
        super().__init__()
        self.folder = folder
        generator = torch.Generator().manual_seed(seed)
        x = torch.rand(256, 1, generator=generator)
        self.data = TensorDataset(x, 3 * x - 1 + 0.05 * torch.randn(256, 1, generator=generator))

    def _loader(self, start: int, stop: int) -> DataLoader[Any]:
        return DataLoader(torch.utils.data.Subset(self.data, range(start, stop)), batch_size=16)

    def train_dataloader(self) -> DataLoader[Any]:
        return self._loader(0, 192)

    def val_dataloader(self) -> DataLoader[Any]:
        return self._loader(192, 224)

    def test_dataloader(self) -> DataLoader[Any]:
        return self._loader(224, 256)


class LineModel(pl.LightningModule):
    """One linear layer; writes its test predictions to ./test_predictions.csv, as hi-ml models do."""

    def __init__(self, l_rate: float) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.l_rate = l_rate
        self.rows: list[str] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.layer(x)
        return out

    def _loss(self, batch: Any) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self(x), y)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train/loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val/loss", self._loss(batch), on_step=False, on_epoch=True)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("test/loss", self._loss(batch), on_step=False, on_epoch=True)
        self.rows += [f"{a:.6f},{b:.6f}" for a, b in zip(self(x).flatten().tolist(), y.flatten().tolist(), strict=True)]

    def on_test_epoch_end(self) -> None:
        Path(PREDICTIONS_FILE).write_text("prediction,target\n" + "\n".join(self.rows) + "\n", encoding="utf-8")

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.l_rate)


class HimlStyleRegression(LightningContainer):
    """hi-ml style: fields set in __init__, a pytorch_lightning model."""

    def __init__(self) -> None:
        super().__init__()
        self.max_epochs = 2
        self.l_rate = 0.5
        self.local_datasets = [Path("line_data")]
        self.pl_limit_val_batches = 1
        self.autosave_every_n_val_epochs = 0

    def create_model(self) -> LineModel:  # type: ignore[override]
        return LineModel(self.l_rate)

    def get_data_module(self) -> LineData:  # type: ignore[override]
        return LineData(self.local_datasets[0] if self.local_datasets else None, self.random_seed)


class MixedPackages(HimlStyleRegression):
    """A pytorch_lightning model with a lightning.pytorch data module: cannot share one Trainer."""

    def get_data_module(self) -> Any:
        from lightning.pytorch import LightningDataModule

        inner = LineData(None, self.random_seed)

        class Other(LightningDataModule):
            def train_dataloader(self) -> DataLoader[Any]:
                return inner.train_dataloader()

        return Other()


class NeedsArguments(LightningContainer):
    """An __init__ that cannot be called with no arguments."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.max_epochs = size


class ForeignCallback(HimlStyleRegression):
    """A pytorch_lightning model with a lightning.pytorch callback."""

    def get_callbacks(self) -> list[Any]:
        from lightning.pytorch import Callback

        return [Callback()]


class TwoNodes(HimlStyleRegression):
    """hi-ml style: the container asks for two machines."""

    def __init__(self) -> None:
        super().__init__()
        self.num_nodes = 2
        self.local_datasets = []  # an AzureML job reads datasets by name


class ZeroNodes(HimlStyleRegression):
    """An __init__ that asks for no machines at all."""

    def __init__(self) -> None:
        super().__init__()
        self.num_nodes = 0
