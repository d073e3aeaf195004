"""The manual's chapter 13 ("LOGGING METRICS WHEN TRAINING MODELS IN AND OUTSIDE AZUREML"), import changed only.

``health_ml.utils`` is ``himl_kernel.lightning``, ``health_azure`` is ``himl_azure_v2``. The manual's
``...`` (a model, a loss, a tensor) are filled with the smallest stand-ins, named as the manual names them.
Outside AzureML, "AzureML" is the local run store (HIML_HOME) the logger writes to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from himl_kernel.current import current_run
from himl_kernel.runstore import RunStore
from tests.manual.conftest import as_himl as azure_as_himl


def as_himl(code: str) -> str:
    changed = azure_as_himl(code).replace("from health_ml.utils import", "from himl_kernel.lightning import")
    assert "health_ml" not in changed
    return changed


def _data() -> DataLoader[Any]:
    x = torch.linspace(0, 1, 8).unsqueeze(1)
    return DataLoader(TensorDataset(x, 2 * x), batch_size=4)


def test_13_1_run_context_log_outside_azureml_prints_the_value(
    himl_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace: dict[str, Any] = {"my_tensor": torch.tensor(0.5)}  # the manual's tensor
    exec(
        as_himl(
            """
from health_azure import RUN_CONTEXT

RUN_CONTEXT.log(name="name_of_the_metric", value=my_tensor.item())
"""
        ),
        namespace,
    )
    # outside AzureML, RUN_CONTEXT is an offline run (as in hi-ml): the metric is printed, not stored
    assert "offline run: name_of_the_metric = 0.5" in capsys.readouterr().out
    assert namespace["RUN_CONTEXT"].id.startswith("OfflineRun_")


def test_13_2_lightning_logger_beside_tensorboard_outside_azureml(
    himl_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace: dict[str, Any] = {}
    exec(
        as_himl(
            """
from health_ml.utils import AzureMLLogger
from pytorch_lightning import Trainer
from pytorch_lightning.loggers import TensorBoardLogger

tb_logger = TensorBoardLogger("logs/")
azureml_logger = AzureMLLogger(enable_logging_outside_azure_ml=False)
trainer = Trainer(logger=[tb_logger, azureml_logger])
"""
        ),
        namespace,
    )
    trainer, azureml_logger = namespace["trainer"], namespace["azureml_logger"]
    assert trainer.loggers == [namespace["tb_logger"], azureml_logger]
    # outside AzureML and not allowed to log there: nothing is stored, and it says so in one line
    assert not azureml_logger.enabled
    assert capsys.readouterr().err.count("enable_logging_outside_azure_ml is False") == 1


def test_13_3_logging_to_azureml_from_outside_prints_the_run_and_its_url(
    himl_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace: dict[str, Any] = {}
    exec(
        as_himl(
            """
from health_ml.utils import AzureMLLogger
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning import Trainer

tb_logger = TensorBoardLogger("logs/")
azureml_logger = AzureMLLogger(enable_logging_outside_azure_ml=True)
trainer = Trainer(logger=[tb_logger, azureml_logger])
"""
        ),
        namespace,
    )
    run_id = namespace["azureml_logger"].version
    printed = capsys.readouterr().out.splitlines()
    # the manual: "Writing metrics to run ... in experiment azureml_logger." and the URL to watch it
    assert printed[0] == f"Writing metrics to run {run_id} in experiment azureml_logger."
    assert printed[1].startswith("To check progress, visit this URL: ") and run_id in printed[1]
    namespace["azureml_logger"].finalize("success")
    assert RunStore().get(run_id).experiment == "azureml_logger"
    assert current_run() is None


class MyModule(pl.LightningModule):
    """The manual's MyModule: a training_step that calls log_learning_rate (13.4.1), with a loss to return."""

    def __init__(self, code: str, schedulers: int = 1) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.schedulers = schedulers
        namespace: dict[str, Any] = {}
        exec(as_himl(code), namespace)
        self.body = namespace["training_step"]

    def training_step(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        loss: torch.Tensor = self.body(self, *args, **kwargs)
        return loss

    def configure_optimizers(self) -> Any:
        first = torch.optim.SGD(self.layer.parameters(), lr=0.1)
        if self.schedulers == 1:
            return [first], [torch.optim.lr_scheduler.StepLR(first, 1)]
        second = torch.optim.SGD([{"params": self.layer.weight}, {"params": self.layer.bias, "lr": 0.5}], lr=0.2)
        self.automatic_optimization = False
        return [first, second], [torch.optim.lr_scheduler.StepLR(o, 1) for o in (first, second)]


LEARNING_RATE_STEP = """
from health_ml.utils import log_learning_rate

def training_step(self, *args, **kwargs):
    x, y = args[0]
    log_learning_rate(self, "learning_rate")
    loss = torch.nn.functional.mse_loss(self.layer(x), y)
    return loss
"""


def test_13_4_1_log_learning_rate_names_one_scheduler_plainly_and_several_by_index(
    himl_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from himl_kernel.lightning import AzureMLLogger

    names = {}
    for schedulers in (1, 2):
        logger = AzureMLLogger(enable_logging_outside_azure_ml=True, experiment_name=f"lr{schedulers}")
        module = MyModule("import torch\n" + LEARNING_RATE_STEP, schedulers)
        if schedulers == 2:  # manual optimisation: two optimizers, the step runs them itself

            def two(self: MyModule, batch: Any, batch_idx: int, body: Any = module.body) -> torch.Tensor:
                loss: torch.Tensor = body(self, batch, batch_idx)
                for optimizer in self.optimizers():
                    optimizer.zero_grad()
                self.manual_backward(loss)
                for optimizer in self.optimizers():
                    optimizer.step()
                return loss

            module.body = two
        trainer = pl.Trainer(
            max_epochs=1, logger=[logger], enable_checkpointing=False, enable_model_summary=False, log_every_n_steps=1
        )
        trainer.fit(module, _data())
        names[schedulers] = {key for key in RunStore().get(logger.version).metrics if key.startswith("learning")}
    # "learning_rate" for a single scheduler with a single rate; "learning_rate/1/0" for scheduler 1, value 0
    assert names[1] == {"learning_rate"}
    assert names[2] == {"learning_rate/0/0", "learning_rate/1/0", "learning_rate/1/1"}


def test_13_4_log_on_epoch_as_the_manual_calls_it_is_one_line() -> None:
    namespace: dict[str, Any] = {}
    exec(
        as_himl(
            """
from health_ml.utils import log_on_epoch
from pytorch_lightning import LightningModule

class MyModule(LightningModule):
    def training_step(self, *args, **kwargs):
        loss = my_loss(y_pred, y)
        log_on_epoch(self, loss)
        return loss
"""
        ),
        namespace,
    )
    # the manual passes the loss without a name; hi-ml's function takes (module, name, value) as himl's does,
    # so the example as printed cannot log: himl says what is missing instead of logging under a tensor's name
    namespace.update(my_loss=torch.nn.functional.mse_loss, y_pred=torch.zeros(2), y=torch.ones(2))
    with pytest.raises(ValueError, match=r"^log_on_epoch: the metric name must be a string, got Tensor$"):
        namespace["MyModule"]().training_step()
