"""DeepMIL: slide classification from bags of tiles, as a LightningContainer (``himl run --model DeepMIL``).

A tile encoder (:mod:`himl_cpath.encoders`) turns each tile into a feature
vector, a pooling layer (:mod:`himl_cpath.pooling`) weighs the tiles of a
slide and sums them into one slide embedding, and a linear layer classifies
it. With a frozen encoder (the default) every tile is encoded once, before
training, into a feature cache that later runs reuse; with
``--tune_encoder`` the tiles are cut from the slides each epoch and the
encoder is trained too.

Binary (``--num_classes 2``) and multiclass; the loss is cross-entropy,
optionally with ``--class_weights``. Validation and test log AUROC,
accuracy, quadratic weighted kappa, F1, precision and recall (macro averages
for several classes). The test writes to the run's outputs folder:

- ``test_output.csv``: one row per tile: slide_id, label, prediction,
  probability (of class 1 when binary; of the predicted class otherwise),
  prob_0 ... prob_{C-1}, tile_x, tile_y (level-0 top-left), right, bottom
  (level-0 bottom-right; only for tiles cut at level 0, whose level-0 size is
  known without the slide), attention. ``himl cpath dsa-upload`` reads it.
- ``test_confusion_matrix.csv``: rows are the true class, columns the predicted one.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule, LightningModule
from pydantic import Field, model_validator
from torch import Tensor, nn
from typing_extensions import override

from himl_cpath.deepmil_data import DeepMILDataModule, class_indices, split_slides
from himl_cpath.encoders import TileEncoder, create_encoder
from himl_cpath.pooling import create_pooling
from himl_cpath.tiling import TilingOptions
from himl_kernel.errors import HimlError
from himl_kernel.lightning.container import LightningContainer

TEST_OUTPUT = "test_output.csv"
CONFUSION_MATRIX = "test_confusion_matrix.csv"
FEATURE_CACHE_FOLDER = "cpath_features"

EncoderName = Literal["resnet18", "resnet50", "swin_tiny"]
PoolingName = Literal["attention", "gated_attention", "mean", "max", "transformer", "transformer_attention"]


def create_metrics(num_classes: int) -> Any:
    """The scalar metrics of a stage (torchmetrics), binary or multiclass."""
    from torchmetrics import MetricCollection
    from torchmetrics.classification import (
        AUROC,
        Accuracy,
        CohenKappa,
        F1Score,
        Precision,
        Recall,
    )

    if num_classes == 2:
        task: dict[str, Any] = {"task": "binary"}
        average: dict[str, Any] = {}
    else:
        task = {"task": "multiclass", "num_classes": num_classes}
        average = {"average": "macro"}
    return MetricCollection(
        {
            "auroc": AUROC(**task),
            "accuracy": Accuracy(**task),
            "qwk": CohenKappa(**task, weights="quadratic"),
            "f1": F1Score(**task, **average),
            "precision": Precision(**task, **average),
            "recall": Recall(**task, **average),
        }
    )


class DeepMILModule(LightningModule):
    """Encoder (optional, when bags hold images), pooling and classifier; see the module docs."""

    def __init__(
        self,
        *,
        num_classes: int,
        feature_dim: int,
        pooling: str,
        encoder: TileEncoder | None = None,
        class_weights: list[float] | None = None,
        pool_hidden_dim: int = 128,
        pool_num_layers: int = 2,
        pool_num_heads: int = 4,
        dropout: float = 0.0,
        tile_extent: int | None = 224,
        outputs_folder: Path | None = None,
        configure: Any = None,
    ) -> None:
        super().__init__()
        from torchmetrics.classification import ConfusionMatrix

        self.num_classes = num_classes
        self.encoder = encoder
        self.pooling = create_pooling(pooling, feature_dim, pool_hidden_dim, pool_num_layers, pool_num_heads)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.pooling.out_dim, num_classes))
        weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        self.loss_fn = nn.CrossEntropyLoss(weight=weights)
        self.val_metrics = create_metrics(num_classes)
        self.test_metrics = create_metrics(num_classes)
        task: dict[str, Any] = {"task": "binary"} if num_classes == 2 else {"task": "multiclass"}
        self.confusion = ConfusionMatrix(**task, num_classes=num_classes)
        self.tile_extent = tile_extent
        self.outputs_folder = outputs_folder
        self._configure = configure
        self._rows: list[dict[str, Any]] = []

    def instances(self, batch: dict[str, Any]) -> Tensor:
        """The (B, N, D) tile features of a batch: cached, or encoded here from its images."""
        if "features" in batch:
            return batch["features"]  # type: ignore[no-any-return]
        if self.encoder is None:
            raise HimlError("DeepMIL: a batch of tile images needs an encoder")
        images, mask = batch["images"], batch["mask"]
        encoded: Tensor = self.encoder(images[mask])
        out = encoded.new_zeros((*mask.shape, encoded.shape[-1]))
        out[mask] = encoded
        return out

    @override
    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """Class logits (B, C) and tile attention (B, N) of a padded batch of bags."""
        embedding, attention = self.pooling(self.instances(batch), batch["mask"])
        return self.classifier(embedding), attention

    def _scores(self, probabilities: Tensor) -> Tensor:
        return probabilities[:, 1] if self.num_classes == 2 else probabilities

    @override
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        logits, _ = self(batch)
        loss: Tensor = self.loss_fn(logits, batch["label"])
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(batch["label"]))
        return loss

    @override
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        logits, _ = self(batch)
        labels = batch["label"]
        self.log("val/loss", self.loss_fn(logits, labels), on_epoch=True, batch_size=len(labels), sync_dist=True)
        self.val_metrics.update(self._scores(torch.softmax(logits, dim=1)), labels)

    @override
    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute()
        self.log_dict({f"val/{name}": value for name, value in values.items()})
        self.val_metrics.reset()

    @override
    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        logits, attention = self(batch)
        labels = batch["label"]
        probabilities = torch.softmax(logits, dim=1)
        self.log("test/loss", self.loss_fn(logits, labels), on_epoch=True, batch_size=len(labels), sync_dist=True)
        self.test_metrics.update(self._scores(probabilities), labels)
        predictions = probabilities.argmax(dim=1)
        self.confusion.update(predictions, labels)
        for row, slide_id in enumerate(batch["slide_id"]):
            real = batch["mask"][row]
            probs = probabilities[row].tolist()
            shown = probs[1] if self.num_classes == 2 else probs[int(predictions[row])]
            xs, ys = batch["tile_x"][row][real].tolist(), batch["tile_y"][row][real].tolist()
            for x, y, weight in zip(xs, ys, attention[row][real].tolist(), strict=True):
                self._rows.append(
                    {
                        "slide_id": slide_id,
                        "label": int(labels[row]),
                        "prediction": int(predictions[row]),
                        "probability": shown,
                        **{f"prob_{c}": p for c, p in enumerate(probs)},
                        "tile_x": x,
                        "tile_y": y,
                        **({"right": x + self.tile_extent, "bottom": y + self.tile_extent} if self.tile_extent else {}),
                        "attention": weight,
                    }
                )

    @override
    def on_test_epoch_end(self) -> None:
        values = self.test_metrics.compute()
        self.log_dict({f"test/{name}": value for name, value in values.items()})
        self.test_metrics.reset()
        matrix = self.confusion.compute().tolist()
        self.confusion.reset()
        if self.outputs_folder is not None and self.trainer.is_global_zero:
            write_test_outputs(self.outputs_folder, self._rows, matrix)
        self._rows = []

    @override
    def configure_optimizers(self) -> Any:
        parameters = [p for p in self.parameters() if p.requires_grad]
        if self._configure is not None:
            return self._configure(parameters)
        return torch.optim.Adam(parameters, lr=1e-3)


def write_test_outputs(folder: Path, rows: list[dict[str, Any]], matrix: list[list[int]]) -> None:
    """``test_output.csv`` (one row per tile) and ``test_confusion_matrix.csv`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    if rows:
        with (folder / TEST_OUTPUT).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    with (folder / CONFUSION_MATRIX).open("w", newline="", encoding="utf-8") as handle:
        writer2 = csv.writer(handle)
        writer2.writerow(["true\\predicted", *range(len(matrix))])
        for index, counts in enumerate(matrix):
            writer2.writerow([index, *counts])


class DeepMIL(LightningContainer):
    """Attention-based multiple-instance learning on whole slides: which class is each slide?"""

    slides_csv: Path | None = Field(
        None, description="dataset.csv of the slides (image, slide_id, label, split); default: the first dataset's"
    )
    num_classes: int = Field(2, ge=2, description="classes; labels are indices 0..num_classes-1 (2: binary)")
    class_weights: list[float] = Field(default_factory=list, description="loss weight of each class; empty: equal")
    encoder: EncoderName = Field("resnet18", description="tile encoder: resnet18, resnet50 or swin_tiny (timm)")
    encoder_weights: Path | None = Field(None, description="a local file of encoder weights; none: random weights")
    encoder_seed: int = Field(0, description="seed of the random encoder weights when no file is given")
    tune_encoder: bool = Field(False, description="train the encoder too (no feature cache)")
    feature_cache: Path | None = Field(
        None, description="folder of cached tile features; default: $HIML_CACHE/cpath_features"
    )
    encoding_batch_size: int = Field(64, ge=1, description="tiles per encoder batch when caching features")
    pooling: PoolingName = Field("attention", description="how tiles are pooled into a slide embedding")
    pool_hidden_dim: int = Field(128, ge=1, description="hidden size of the attention (and transformer feed-forward)")
    pool_num_layers: int = Field(2, ge=1, description="transformer layers of the transformer poolings")
    pool_num_heads: int = Field(4, ge=1, description="attention heads of the transformer poolings")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout before the classifier")
    tile_size: int = Field(224, ge=1, description="tile side in pixels at tile_level")
    tile_level: int = Field(0, ge=0, description="pyramid level the tiles are cut at")
    tile_overlap: int = Field(0, ge=0, description="pixels neighbouring tiles share")
    min_occupancy: float = Field(0.5, ge=0, le=1, description="least share of tissue in a kept tile")
    max_bag_size: int = Field(0, ge=0, description="tiles drawn per slide in training; 0: all")
    max_bag_size_inference: int = Field(0, ge=0, description="tiles per slide in validation and test; 0: all")
    batch_size: int = Field(4, ge=1, description="slides per batch")
    val_fraction: float = Field(0.2, ge=0, lt=1, description="share of the slides (per class) for validation")
    test_fraction: float = Field(0.2, ge=0, lt=1, description="share of the slides (per class) for the test")
    split_seed: int = Field(0, description="seed of the split into train, validation and test")
    slide_backend: str | None = Field(None, description="slide reader backend(s); default: OpenSlide, then the others")
    max_epochs: int = Field(50, ge=1, description="epochs to train for")
    l_rate: float = Field(1e-3, gt=0, description="the learning rate at the start of the schedule")

    @model_validator(mode="after")
    def _one_weight_per_class(self) -> DeepMIL:
        if self.class_weights and len(self.class_weights) != self.num_classes:
            raise ValueError(f"class_weights has {len(self.class_weights)} values for {self.num_classes} classes")
        return self

    @property
    def tiling(self) -> TilingOptions:
        return TilingOptions(self.tile_size, self.tile_level, self.tile_overlap, self.min_occupancy)

    def slides_table(self) -> Path:
        if self.slides_csv is not None:
            return self.slides_csv
        folders = [f for f in self.input_folders if f is not None]
        if not folders:
            raise HimlError("DeepMIL needs --slides_csv, or a dataset (--local_datasets) holding dataset.csv")
        return folders[0] / "dataset.csv"

    def create_encoder(self) -> TileEncoder:
        return create_encoder(
            self.encoder, weights=self.encoder_weights, frozen=not self.tune_encoder, seed=self.encoder_seed
        )

    @override
    def create_model(self) -> LightningModule:
        encoder = self.create_encoder()
        return DeepMILModule(
            num_classes=self.num_classes,
            feature_dim=encoder.num_features,
            pooling=self.pooling,
            encoder=encoder if self.tune_encoder else None,
            class_weights=self.class_weights or None,
            pool_hidden_dim=self.pool_hidden_dim,
            pool_num_layers=self.pool_num_layers,
            pool_num_heads=self.pool_num_heads,
            dropout=self.dropout,
            tile_extent=self.tile_size if self.tile_level == 0 else None,
            outputs_folder=self.outputs_folder,
            configure=self.create_optimizers,
        )

    @override
    def get_data_module(self) -> LightningDataModule:
        from himl_cpath.feature_cache import cache_features, cache_folder
        from himl_cpath.slide_table import slides_from_csv
        from himl_kernel.dataset_prep import cache_dir

        table = self.slides_table()
        records = slides_from_csv(table)
        slides = class_indices(records, self.num_classes)
        fixed = _fixed_splits(table, [r.slide_id for r in records])
        splits = split_slides(
            slides,
            val_fraction=self.val_fraction,
            test_fraction=self.test_fraction,
            seed=self.split_seed,
            fixed=fixed,
            crossval_count=self.crossval_count,
            crossval_index=self.crossval_index,
        )
        folder: Path | None = None
        prepare = None
        if not self.tune_encoder:
            encoder = self.create_encoder()
            root = self.feature_cache or cache_dir() / FEATURE_CACHE_FOLDER
            folder = cache_folder(root, encoder, self.tiling)

            def prepare() -> None:
                _, count = cache_features(
                    records,
                    encoder,
                    self.tiling,
                    root,
                    batch_size=self.encoding_batch_size,
                    backend=self.slide_backend,
                )
                print(f"himl: encoded {count} of {len(records)} slides into {folder}", flush=True)

        return DeepMILDataModule(
            splits,
            options=self.tiling,
            batch_size=self.batch_size,
            max_bag_size=self.max_bag_size,
            max_bag_size_inference=self.max_bag_size_inference,
            feature_cache=folder,
            prepare=prepare,
            seed=self.effective_random_seed,
            backend=self.slide_backend,
        )


def _fixed_splits(table: Path, slide_ids: list[str]) -> dict[str, str]:
    """slide id -> split from the table's ``split`` column, where it has one (``slide_ids``: the rows' ids)."""
    with table.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if "split" not in (reader.fieldnames or []):
            return {}
        splits = [(row.get("split") or "").strip().lower() for row in reader]
    return {slide_id: split for slide_id, split in zip(slide_ids, splits, strict=True) if split}
