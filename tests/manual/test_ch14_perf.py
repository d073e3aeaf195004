"""The manual's chapter 14 ("PERFORMANCE DIAGNOSTICS"), each example with only its import changed.

``health_ml.utils`` is ``himl_kernel.lightning``. The manual builds the Trainer and leaves training to the
reader: the test trains a one-layer model on 5 training and 2 validation batches (the manual's sample
output shows 5/5 and 2/2) for two epochs, the Trainer's epoch count being set after the manual's code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset


def as_himl(code: str) -> str:
    changed = code.replace("from health_ml.utils import", "from himl_kernel.lightning import")
    assert "health_ml" not in changed
    return changed


class Line(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss: torch.Tensor = torch.nn.functional.mse_loss(self.layer(x), y)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val/loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader(batches: int) -> DataLoader[Any]:
    x = torch.rand(4 * batches, 1)
    return DataLoader(TensorDataset(x, 2 * x), batch_size=4)


def _train(code: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(as_himl(code), namespace)
    trainer = namespace["trainer"]
    trainer.fit_loop.max_epochs = 2
    trainer.fit(Line(), _loader(5), _loader(2))
    return namespace


def test_14_1_azureml_progress_bar_prints_timestamped_lines(
    himl_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace = _train(
        """
from health_ml.utils import AzureMLProgressBar
from pytorch_lightning import Trainer

progress = AzureMLProgressBar(refresh_rate=100, print_timestamp=True)
trainer = Trainer(callbacks=[progress])
"""
    )
    assert namespace["trainer"].progress_bar_callback is namespace["progress"]  # it replaced Lightning's own
    lines = [line for line in capsys.readouterr().out.splitlines() if re.match(r"^\d{4}-\d\d-\d\dT", line)]
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    # the manual's lines, as they end an epoch: "<time> Training epoch 18 (step 94):    5/5 (100%) completed. ..."
    training = re.compile(
        rf"^{stamp} Training epoch (\d+) \(step (\d+)\):\s+5/5 \(100%\) completed\. \d\d:\d\d elapsed, "
        r"total epoch time ~ \d\d:\d\d$"
    )
    validation = re.compile(
        rf"^{stamp} Validation epoch (\d+):\s+2/2 \(100%\) completed\. \d\d:\d\d elapsed, total epoch time ~ \d\d:\d\d$"
    )
    finished = [(int(m[1]), int(m[2])) for m in map(training.match, lines) if m]
    # the step of the epoch's last batch, as the manual's 94 and 99 end epochs 18 and 19
    assert finished == [(0, 4), (1, 9)]
    assert [int(m[1]) for m in map(validation.match, lines) if m] == [0, 1]


def test_14_2_batch_time_callback_prints_the_manuals_lines(himl_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _train(
        """
from health_ml.utils import BatchTimeCallback
from pytorch_lightning import Trainer

batchtime = BatchTimeCallback(max_batch_load_time_seconds=0.5)
trainer = Trainer(callbacks=[batchtime])
"""
    )
    out = capsys.readouterr().err  # the callback's lines go to stderr, beside Lightning's own messages
    for epoch in (0, 1):
        for phase in ("training", "validation"):
            assert re.search(
                rf"^Epoch {epoch} {phase}: Loaded the first minibatch of data in \d+\.\d\d sec\.$", out, re.M
            )
            assert re.search(
                rf"^Epoch {epoch} {phase} took \d+\.\d\dsec, of which waiting for data took \d+\.\d\d sec total\.$",
                out,
                re.M,
            ), out
