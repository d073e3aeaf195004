"""hi-ml's example Lightning trainer for Amulet (manual chapter 12), rewritten, hi-ml's calls kept.

What differs from hi-ml's script is the import block: ``health_azure`` /
``health_ml`` become ``himl_amulet.himl_compat``, ``himl_azure_v2`` and
``himl_kernel.lightning``, and ``pytorch_lightning`` is ``lightning.pytorch``.
The body calls what hi-ml's does, in the same order: print what the job sees,
write one file to each output folder, ``submit_to_azure_if_needed``,
``prepare_amulet_job``, ``set_environment_variables_for_multi_node``, then two
epochs of a tiny model logging to TensorBoard in the Amulet output folder and
to the job's run through ``AzureMLLogger``.

tests/amulet/test_amulet_job.py runs it under a simulated Amulet job.
"""

import json
import os
from pathlib import Path

import torch
from himl_amulet.himl_compat import (
    ENV_AMLT_DATAREFERENCE_OUTPUT,
    ENV_AMLT_INPUT_OUTPUT,
    ENV_AMLT_PROJECT_NAME,
    get_amulet_aml_working_dir,
    get_amulet_data_dir,
    get_amulet_output_dir,
    is_amulet_job,
    is_global_rank_zero,
    is_local_rank_zero,
    prepare_amulet_job,
    set_environment_variables_for_multi_node,
)
from himl_azure_v2 import submit_to_azure_if_needed
from lightning.fabric.utilities.rank_zero import _get_rank
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from torch.utils.data import DataLoader, Dataset, Subset

from himl_kernel.lightning import AzureMLLogger

FEATURES = 4
SPLIT = 16


def report_environment() -> None:
    """What a failing Amulet job needs to show: its Amulet variables and folders (one JSON line)."""
    seen = {
        "project": os.environ.get(ENV_AMLT_PROJECT_NAME),
        "input_output": os.environ.get(ENV_AMLT_INPUT_OUTPUT),
        "output_dir": str(get_amulet_output_dir()),
        "data_dir": str(get_amulet_data_dir()),
        "datareference_output": os.environ.get(ENV_AMLT_DATAREFERENCE_OUTPUT),
        "is_amulet_job": is_amulet_job(),
        "working_dir": str(get_amulet_aml_working_dir()),
        "cwd": str(Path.cwd()),
    }
    print("AMULET_ENVIRONMENT " + json.dumps(seen), flush=True)


def write_marker_files() -> None:
    """One file where Amulet's browser sees it (the Amulet output folder), one where AzureML's UI does."""
    amulet_out = get_amulet_output_dir()
    if amulet_out is not None:
        (amulet_out / "amulet_output.txt").write_text("written to the Amulet output folder\n")
    working = get_amulet_aml_working_dir()
    if working is not None:
        (working / "azureml_output.txt").write_text("written to the AzureML working folder\n")


class Noise(Dataset[torch.Tensor]):
    def __init__(self, count: int) -> None:
        self.rows = torch.randn(count, FEATURES)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.rows[index]

    def __len__(self) -> int:
        return len(self.rows)


class TinyModel(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(FEATURES, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)

    def _loss(self, batch: torch.Tensor) -> torch.Tensor:
        out = self(batch)
        return torch.nn.functional.mse_loss(out, torch.ones_like(out))

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("loss_step", loss, on_step=True, on_epoch=False)
        self.log("loss_epoch", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        return self._loss(batch)

    def configure_optimizers(self):  # type: ignore[no-untyped-def]
        optimizer = torch.optim.SGD(self.layer.parameters(), lr=0.1)
        return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)]


class NoiseData(LightningDataModule):
    def setup(self, stage: str | None = None) -> None:
        rows = Noise(SPLIT * 2)
        self.train = Subset(rows, range(SPLIT))
        self.val = Subset(rows, range(SPLIT, SPLIT * 2))

    def train_dataloader(self) -> DataLoader[torch.Tensor]:
        return DataLoader(self.train)

    def val_dataloader(self) -> DataLoader[torch.Tensor]:
        return DataLoader(self.val)


def train(tensorboard_folder: Path | None) -> None:
    gpus = torch.cuda.device_count()
    loggers: list[Logger] = []
    if tensorboard_folder is not None:
        loggers.append(TensorBoardLogger(save_dir=str(tensorboard_folder), name="Lightning", version=""))
    loggers.append(AzureMLLogger())  # the job's own run, as in the AzureML UI
    trainer = Trainer(
        accelerator="gpu" if gpus else "cpu",
        devices=gpus or 1,
        strategy="ddp" if gpus > 1 else "auto",
        max_epochs=2,
        logger=loggers,
        num_nodes=1,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(TinyModel(), datamodule=NoiseData())


def diagnostics() -> None:
    if is_global_rank_zero():
        report_environment()
        write_marker_files()
    data = get_amulet_data_dir()
    print(f"RANKS lightning={_get_rank()} local_zero={is_local_rank_zero()} global_zero={is_global_rank_zero()}")
    print(f"DATA {data}" if data else "DATA none: no data container is mounted", flush=True)


def main() -> None:
    diagnostics()
    submit_to_azure_if_needed(compute_cluster_name="litetesting-ds2")
    prepare_amulet_job()
    print(f"RANK after prepare_amulet_job: {os.environ.get('RANK')}", flush=True)
    set_environment_variables_for_multi_node()
    train(get_amulet_output_dir())


if __name__ == "__main__":
    main()
