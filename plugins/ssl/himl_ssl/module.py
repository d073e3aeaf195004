"""The LightningModule of SSL training: SimCLR or BYOL, with the online linear evaluator inside it.

The evaluator is a linear layer of this module, trained on detached
embeddings of the labelled batches: no gradient reaches the encoder, DDP
averages its gradients with the rest, its weights and optimizer state are in
every checkpoint (a resumed run carries on with it), and its metrics are
torchmetrics objects, computed once over all processes.

Training batches are ``{"ssl": (images, labels), "linear_head": (images,
labels)}`` of uint8 images; validation has two loaders, the SSL set (its
loss) and the labelled set (the evaluator's metrics).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from typing_extensions import override

from himl_ssl.augment import AugmentationConfig, augment_batch
from himl_ssl.byol import BYOLNetworks, cosine_decay
from himl_ssl.encoders import create_encoder
from himl_ssl.heads import mlp_head
from himl_ssl.losses import nt_xent_loss

SSLType = Literal["SimCLR", "BYOL"]
EVALUATOR = "ssl_online_evaluator"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """The learning-rate factor: a linear rise over ``warmup_steps``, then a cosine fall to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    span = max(total_steps - warmup_steps, 1)
    return 0.5 * (1 + math.cos(math.pi * min(step - warmup_steps, span) / span))


class SSLModule(LightningModule):
    """An encoder trained by SimCLR or BYOL, and a linear head that monitors its embeddings."""

    mean: Tensor
    std: Tensor
    class_weights: Tensor

    def __init__(
        self,
        encoder_name: str,
        method: SSLType,
        num_classes: int,
        image_size: int,
        learning_rate: float,
        weight_decay: float,
        linear_head_learning_rate: float,
        warmup_epochs: int,
        augmentation: AugmentationConfig | None = None,
        linear_head_augmentation: AugmentationConfig | None = None,
        linear_head_class_weights: list[float] | None = None,
        temperature: float = 0.1,
        projection_dim: int = 128,
        hidden_dim: int = 2048,
        byol_base_decay: float = 0.99,
    ) -> None:
        super().__init__()
        self.encoder_name = encoder_name
        self.method = method
        self.image_size = image_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.linear_head_learning_rate = linear_head_learning_rate
        self.warmup_epochs = warmup_epochs
        self.augmentation = augmentation or AugmentationConfig.model_validate({})
        self.linear_head_augmentation = linear_head_augmentation
        self.temperature = temperature
        self.byol_base_decay = byol_base_decay
        encoder, self.feature_size = create_encoder(encoder_name)
        self.byol: BYOLNetworks | None = None
        if method == "BYOL":
            self.byol = BYOLNetworks(encoder, self.feature_size, hidden=hidden_dim, projection=projection_dim)
            self.encoder = self.byol.encoder
        else:
            self.encoder = encoder
            self.projection = mlp_head(self.feature_size, hidden_dim, projection_dim)
        self.num_classes = num_classes
        self.linear_head = nn.Linear(self.feature_size, num_classes)
        weights = torch.tensor(linear_head_class_weights) if linear_head_class_weights else torch.ones(num_classes)
        self.register_buffer("class_weights", weights.float(), persistent=False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.val_metrics = self._metrics()
        self.save_hyperparameters(
            {
                "encoder_name": encoder_name,
                "method": method,
                "feature_size": self.feature_size,
                "image_size": image_size,
                "mean": list(IMAGENET_MEAN),
                "std": list(IMAGENET_STD),
                "num_classes": num_classes,
            }
        )

    def _metrics(self) -> nn.ModuleDict:
        from torchmetrics.classification import AUROC, Accuracy, AveragePrecision

        if self.num_classes == 2:
            return nn.ModuleDict(
                {
                    "AreaUnderRocCurve": AUROC(task="binary"),
                    "AreaUnderPRCurve": AveragePrecision(task="binary"),
                    "AccuracyAtThreshold05": Accuracy(task="binary"),
                }
            )
        k = self.num_classes
        return nn.ModuleDict(
            {
                "AreaUnderRocCurve": AUROC(task="multiclass", num_classes=k),
                "AreaUnderPRCurve": AveragePrecision(task="multiclass", num_classes=k),
                "Accuracy": Accuracy(task="multiclass", num_classes=k),
            }
        )

    @property
    def loss_prefix(self) -> str:
        return self.method.lower()

    def normalise(self, images: Tensor) -> Tensor:
        return (images - self.mean) / self.std

    def as_float(self, images: Tensor) -> Tensor:
        return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()

    def generator(self, stage: int, step: int, device: torch.device) -> torch.Generator:
        """The random numbers of the augmentations of one batch: seeded by the run's seed, stage, step and rank.

        So a run resumed from a checkpoint draws the same augmentations an
        uninterrupted run would have drawn (torch's global generator is not in
        checkpoints), and the validation views are the same at every epoch.
        """
        rank = int(self.trainer.global_rank) if self._trainer is not None else 0
        seed = (torch.initial_seed() * 1_000_003 + stage) * 1_000_003 + step
        return torch.Generator(device=device).manual_seed((seed * 1_009 + rank) % (2**63))

    def views(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Two augmented, normalised views of a uint8 batch."""
        x = self.as_float(images)
        return (
            self.normalise(augment_batch(x, self.augmentation, self.image_size, generator)),
            self.normalise(augment_batch(x, self.augmentation, self.image_size, generator)),
        )

    def ssl_loss(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        view1, view2 = self.views(images, generator)
        if self.byol is not None:
            return self.byol.loss(view1, view2)
        z = self.projection(self.encoder(torch.cat([view1, view2])))
        z1, z2 = z.chunk(2)
        return nt_xent_loss(z1, z2, self.temperature)

    def embed(
        self, images: Tensor, augmentation: AugmentationConfig | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Encoder features of a uint8 batch (no augmentation unless given), with no gradient."""
        x = self.as_float(images)
        if augmentation is not None:
            x = augment_batch(x, augmentation, self.image_size, generator)
        elif x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        with torch.no_grad():
            features: Tensor = self.encoder(self.normalise(x))
        return features.detach()

    def linear_head_loss(self, images: Tensor, labels: Tensor, generator: torch.Generator | None = None) -> Tensor:
        logits = self.linear_head(self.embed(images, self.linear_head_augmentation, generator))
        return F.cross_entropy(logits, labels, weight=self.class_weights)

    @override
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        images, _ = batch["ssl"]
        generator = self.generator(0, self.global_step, images.device)
        loss = self.ssl_loss(images, generator)
        head_images, head_labels = batch["linear_head"]
        head_loss = self.linear_head_loss(head_images, head_labels, generator)
        self.log(f"{self.loss_prefix}/train/loss", loss, prog_bar=True, on_step=False, on_epoch=True, sync_dist=True)
        self.log(f"{EVALUATOR}/train/loss", head_loss, on_step=False, on_epoch=True, sync_dist=True)
        return loss + head_loss

    @override
    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.byol is not None:
            total = max(int(self.trainer.estimated_stepping_batches), 1)
            self.byol.update_target(cosine_decay(self.global_step, total, self.byol_base_decay))

    def _evaluate(self, batch: Any, batch_idx: int, dataloader_idx: int, stage: str) -> None:
        images, labels = batch
        if dataloader_idx == 0:
            loss = self.ssl_loss(images, self.generator(1, batch_idx, images.device))
            self.log(f"{self.loss_prefix}/{stage}/loss", loss, sync_dist=True, add_dataloader_idx=False)
            return
        probabilities = torch.softmax(self.linear_head(self.embed(images)), dim=1)
        scores = probabilities[:, 1] if self.num_classes == 2 else probabilities
        metric: Any
        for metric in self.val_metrics.values():
            metric.update(scores, labels)

    def _log_evaluator(self, stage: str) -> None:
        metric: Any
        for name, metric in self.val_metrics.items():
            if metric.update_called:
                self.log(f"{EVALUATOR}/{stage}/{name}", metric.compute(), add_dataloader_idx=False)
            metric.reset()

    @override
    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(batch, batch_idx, dataloader_idx, "val")

    @override
    def on_validation_epoch_end(self) -> None:
        self._log_evaluator("val")

    @override
    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        """The SSL loss and the evaluator's metrics on the validation sets (SSL runs keep no test set of their own)."""
        self._evaluate(batch, batch_idx, dataloader_idx, "test")

    @override
    def on_test_epoch_end(self) -> None:
        self._log_evaluator("test")

    @override
    def configure_optimizers(self) -> Any:
        """Adam for the SSL networks at the rate scaled by the processes, warm-up then cosine; the head's rate fixed."""
        world = max(int(self.trainer.world_size), 1) if self._trainer is not None else 1
        head = list(self.linear_head.parameters())
        head_ids = {id(p) for p in head}
        ssl = [p for p in self.parameters() if p.requires_grad and id(p) not in head_ids]
        optimizer = torch.optim.Adam(
            [
                {"params": ssl, "lr": self.learning_rate * world, "weight_decay": self.weight_decay},
                {"params": head, "lr": self.linear_head_learning_rate, "weight_decay": 0.0},
            ]
        )
        total = max(int(self.trainer.estimated_stepping_batches), 1) if self._trainer is not None else 1
        epochs = max(int(self.trainer.max_epochs or 1), 1) if self._trainer is not None else 1
        warmup = min(self.warmup_epochs, epochs - 1) * total // epochs

        def ssl_factor(step: int) -> float:
            return warmup_cosine(step, warmup, total)

        def constant(step: int) -> float:
            return 1.0

        lambdas: list[Callable[[int], float]] = [ssl_factor, constant]
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def backbone(self) -> nn.Module:
        """The encoder to export: SimCLR's, or BYOL's online one (never the target)."""
        return self.encoder
