"""The callback that writes the trained encoder's files at the end of training (global rank zero only)."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from typing_extensions import override

from himl_ssl.export import backbone_weights, encoder_description, write_encoder_files


class ExportEncoder(Callback):
    """Writes ``encoder.safetensors`` and ``encoder.json`` into ``folder`` when training ends."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @override
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        from himl_ssl.module import SSLModule

        if not isinstance(pl_module, SSLModule):
            return
        hyper = pl_module.hparams
        description = encoder_description(
            pl_module.encoder_name,
            pl_module.feature_size,
            pl_module.image_size,
            list(hyper["mean"]),
            list(hyper["std"]),
            pl_module.method,
        )
        weights, _ = write_encoder_files(self.folder, backbone_weights(pl_module.backbone()), description)
        print(f"himl: wrote the {pl_module.method} encoder ({pl_module.encoder_name}) to {weights}", flush=True)
