"""SSLContainer: self-supervised pre-training of an image encoder, with hi-ml's field names and meanings.

The first dataset (``--local_datasets``, or ``--azure_datasets``) is the SSL
set; the second, if given, is the labelled set the linear head monitors with,
else the SSL set's own labels serve. ``l_rate`` is the rate of one process: it
is multiplied by the number of processes, rises linearly over
``l_rate_warmup_epochs`` and falls on a cosine. At the end of training the
encoder is written to ``outputs/encoder.safetensors`` and ``outputs/encoder.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator
from typing_extensions import override

from himl_kernel.errors import HimlError
from himl_kernel.lightning.container import LightningContainer

if TYPE_CHECKING:
    from lightning.pytorch import Callback, LightningDataModule, LightningModule

    from himl_ssl.augment import AugmentationConfig
    from himl_ssl.data import ImageDataset

EncoderName = Literal["resnet18", "resnet50", "resnet101", "densenet121", "cifar_resnet18", "cifar_resnet50"]
DatasetName = Literal[
    "auto", "CIFAR10", "CIFAR100", "TCGA_CRCK", "TilesDataset", "RSNA", "NIH", "CheXpert", "ImageFolder"
]


class SSLContainer(LightningContainer):
    """SimCLR or BYOL pre-training with an online linear evaluator."""

    ssl_training_dataset_name: DatasetName = Field("auto", description="layout of the SSL set; auto: detected")
    linear_head_dataset_name: DatasetName = Field("auto", description="layout of the labelled set; auto: detected")
    ssl_encoder: EncoderName = Field("resnet50", description="the encoder to train (timm, random initial weights)")
    ssl_training_type: Literal["SimCLR", "BYOL"] = Field("SimCLR", description="SimCLR or BYOL")
    ssl_training_batch_size: int = Field(256, ge=2, description="SSL images per batch and process")
    linear_head_batch_size: int = Field(256, ge=1, description="labelled images per batch and process")
    ssl_augmentation_config: Path | None = Field(None, description="YAML of the SSL augmentations; none: SimCLR's")
    linear_head_augmentation_config: Path | None = Field(
        None, description="YAML of the labelled images' augmentations; none: only resizing"
    )
    use_balanced_binary_loss_for_linear_head: bool = Field(
        False, description="weigh the head's loss by the inverse frequency of each class"
    )
    learning_rate_linear_head_during_ssl_training: float = Field(1e-4, gt=0, description="the linear head's rate")
    num_epochs: int | None = Field(None, ge=1, description="hi-ml's name of max_epochs (wins when given)")
    download_dataset: bool = Field(
        False, description="download CIFAR10/CIFAR100 into the SSL folder when it lacks them (needs the network)"
    )
    is_debug_model: bool = Field(False, description="only the first batch of each epoch")
    drop_last: bool = Field(True, description="drop the last, incomplete training batch")
    image_size: int = Field(224, ge=8, description="side in pixels of the images the encoder sees")
    temperature: float = Field(0.1, gt=0, description="NT-Xent temperature (SimCLR)")
    projection_dim: int = Field(128, ge=1, description="output size of the projection head")
    hidden_dim: int = Field(2048, ge=1, description="hidden size of the projection head (and BYOL's predictor)")
    byol_base_decay: float = Field(0.99, ge=0, lt=1, description="BYOL target decay at the start (cosine to 1)")
    num_workers: int = Field(4, ge=0, description="loader processes (0: in the training process)")
    max_epochs: int = Field(200, ge=1, description="epochs to train for")
    l_rate: float = Field(1e-3, gt=0, description="learning rate of one process (scaled by the process count)")
    l_rate_warmup_epochs: int = Field(10, ge=0, description="epochs of linear warm-up before the cosine")
    best_checkpoint_metric: str = Field(
        "ssl_online_evaluator/val/AreaUnderRocCurve", description="the metric that picks the best checkpoint"
    )
    best_checkpoint_mode: Literal["min", "max"] = Field("max", description="whether the best metric is low or high")

    @model_validator(mode="after")
    def _num_epochs_is_max_epochs(self) -> SSLContainer:
        # only when they differ: the assignment is validated, which runs this validator again
        if self.num_epochs is not None and self.max_epochs != self.num_epochs:
            self.max_epochs = self.num_epochs
        return self

    # -- data ---------------------------------------------------------------------
    def _folders(self) -> tuple[Path, Path]:
        folders = [f for f in self.input_folders if f is not None]
        if not folders:
            raise HimlError(
                f"{type(self).__name__} needs a dataset: --local_datasets [SSL_FOLDER] or [SSL_FOLDER,LABELLED_FOLDER]"
            )
        return folders[0], folders[1] if len(folders) > 1 else folders[0]

    def datasets(self) -> tuple[ImageDataset, ImageDataset, ImageDataset, ImageDataset]:
        """SSL train and validation sets, labelled train and validation sets."""
        from himl_ssl.data import ImageDataset, find_images

        ssl_folder, head_folder = self._folders()
        size = self.image_size

        def load(folder: Path, name: DatasetName, split: Literal["train", "val"]) -> ImageDataset:
            return ImageDataset(find_images(folder, name, split), size)

        return (
            load(ssl_folder, self.ssl_training_dataset_name, "train"),
            load(ssl_folder, self.ssl_training_dataset_name, "val"),
            load(head_folder, self.linear_head_dataset_name, "train"),
            load(head_folder, self.linear_head_dataset_name, "val"),
        )

    @override
    def before_training_on_local_rank_zero(self) -> None:
        """With ``--download_dataset``: fetch the CIFAR sets the run names that are not in their folders yet."""
        if not self.download_dataset:
            return
        from himl_ssl.data import CIFAR_FOLDERS, download_cifar

        ssl_folder, head_folder = self._folders()
        wanted = [(ssl_folder, self.ssl_training_dataset_name), (head_folder, self.linear_head_dataset_name)]
        cifar = [(folder, name) for folder, name in wanted if name in CIFAR_FOLDERS]
        if not cifar:
            raise HimlError("--download_dataset downloads only CIFAR10 or CIFAR100; this run names neither")
        for folder, name in cifar:
            download_cifar(folder, name)

    def augmentation(self, path: Path | None) -> AugmentationConfig | None:
        from himl_ssl.augment import load_augmentation_config

        return load_augmentation_config(path) if path is not None else None

    # -- the container's parts ----------------------------------------------------------
    @override
    def create_model(self) -> LightningModule:
        from himl_ssl.module import SSLModule

        _, _, head_train, head_val = self.datasets()
        num_classes = max(head_train.num_classes, head_val.num_classes, 2)
        weights = None
        if self.use_balanced_binary_loss_for_linear_head:
            counts = [head_train.images.labels.count(k) for k in range(num_classes)]
            weights = [len(head_train) / (num_classes * max(c, 1)) for c in counts]
        return SSLModule(
            encoder_name=self.ssl_encoder,
            method=self.ssl_training_type,
            num_classes=num_classes,
            image_size=self.image_size,
            learning_rate=self.l_rate,
            weight_decay=self.weight_decay,
            linear_head_learning_rate=self.learning_rate_linear_head_during_ssl_training,
            warmup_epochs=self.l_rate_warmup_epochs,
            augmentation=self.augmentation(self.ssl_augmentation_config),
            linear_head_augmentation=self.augmentation(self.linear_head_augmentation_config),
            linear_head_class_weights=weights,
            temperature=self.temperature,
            projection_dim=self.projection_dim,
            hidden_dim=self.hidden_dim,
            byol_base_decay=self.byol_base_decay,
        )

    @override
    def get_data_module(self) -> LightningDataModule:
        from himl_ssl.datamodule import SSLDataModule

        ssl_train, ssl_val, head_train, head_val = self.datasets()
        return SSLDataModule(
            ssl_train,
            ssl_val,
            head_train,
            head_val,
            ssl_batch_size=self.ssl_training_batch_size,
            head_batch_size=self.linear_head_batch_size,
            num_workers=self.num_workers,
            drop_last=self.drop_last,
        )

    @override
    def get_callbacks(self) -> list[Callback]:
        from himl_ssl.callbacks import ExportEncoder

        return [ExportEncoder(self.outputs_folder)]

    @override
    def get_trainer_arguments(self) -> dict[str, Any]:
        return {"limit_train_batches": 1, "limit_val_batches": 1} if self.is_debug_model else {}
