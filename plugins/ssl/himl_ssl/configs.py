"""hi-ml's named SSL configurations, as containers: ``himl run --model CRCK_SimCLR`` and the others."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from himl_ssl.container import DatasetName, EncoderName, SSLContainer


class CRCK_SimCLR(SSLContainer):
    """SimCLR on TCGA-CRCk tiles (resnet50, 48 per GPU), monitored by MSI/MSS from the slide labels."""

    ssl_training_dataset_name: DatasetName = Field("TCGA_CRCK", description="layout of the SSL set")
    linear_head_dataset_name: DatasetName = Field("TCGA_CRCK", description="layout of the labelled set")
    ssl_encoder: EncoderName = Field("resnet50", description="the encoder to train")
    ssl_training_type: Literal["SimCLR", "BYOL"] = Field("SimCLR", description="SimCLR or BYOL")
    ssl_training_batch_size: int = Field(48, ge=2, description="SSL images per batch and process")
    linear_head_batch_size: int = Field(48, ge=1, description="labelled images per batch and process")
    image_size: int = Field(224, ge=8, description="side in pixels of the images the encoder sees")
    max_epochs: int = Field(200, ge=1, description="epochs to train for")


class CRCK_BYOL(CRCK_SimCLR):
    """BYOL on TCGA-CRCk tiles."""

    ssl_training_type: Literal["SimCLR", "BYOL"] = Field("BYOL", description="SimCLR or BYOL")


class CIFAR10SimCLR(SSLContainer):
    """SimCLR on CIFAR-10 (torchvision's folder), a CIFAR-stem resnet50, 32-pixel images."""

    ssl_training_dataset_name: DatasetName = Field("CIFAR10", description="layout of the SSL set")
    linear_head_dataset_name: DatasetName = Field("CIFAR10", description="layout of the labelled set")
    ssl_encoder: EncoderName = Field("cifar_resnet50", description="the encoder to train")
    ssl_training_type: Literal["SimCLR", "BYOL"] = Field("SimCLR", description="SimCLR or BYOL")
    ssl_training_batch_size: int = Field(512, ge=2, description="SSL images per batch and process")
    linear_head_batch_size: int = Field(256, ge=1, description="labelled images per batch and process")
    image_size: int = Field(32, ge=8, description="side in pixels of the images the encoder sees")
    max_epochs: int = Field(2500, ge=1, description="epochs to train for")


class CIFAR10BYOL(CIFAR10SimCLR):
    """BYOL on CIFAR-10."""

    ssl_training_type: Literal["SimCLR", "BYOL"] = Field("BYOL", description="SimCLR or BYOL")


class NIH_RSNA_SimCLR(SSLContainer):
    """SimCLR on NIH Chest X-ray 14, monitored by pneumonia on RSNA Pneumonia (balanced loss), resnet50 at 224 px.

    ``--local_datasets [NIH_FOLDER,RSNA_FOLDER]`` (or ``--azure_datasets``): the
    NIH set is trained on without its labels, RSNA's labels only monitor.
    hi-ml trains it on 16 GPUs with 75 images each.
    """

    ssl_training_dataset_name: DatasetName = Field("NIH", description="layout of the SSL set")
    linear_head_dataset_name: DatasetName = Field("RSNA", description="layout of the labelled set")
    ssl_encoder: EncoderName = Field("resnet50", description="the encoder to train")
    ssl_training_type: Literal["SimCLR", "BYOL"] = Field("SimCLR", description="SimCLR or BYOL")
    ssl_training_batch_size: int = Field(75, ge=2, description="SSL images per batch and process")
    linear_head_batch_size: int = Field(64, ge=1, description="labelled images per batch and process")
    use_balanced_binary_loss_for_linear_head: bool = Field(
        True, description="weigh the head's loss by the inverse frequency of each class"
    )
    image_size: int = Field(224, ge=8, description="side in pixels of the images the encoder sees")
    max_epochs: int = Field(1000, ge=1, description="epochs to train for")
    random_seed: int = Field(1, description="the run's random seed")


class NIH_RSNA_BYOL(NIH_RSNA_SimCLR):
    """BYOL on NIH Chest X-ray 14, monitored by pneumonia on RSNA Pneumonia."""

    ssl_training_type: Literal["SimCLR", "BYOL"] = Field("BYOL", description="SimCLR or BYOL")
