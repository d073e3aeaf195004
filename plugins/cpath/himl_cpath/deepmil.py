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
  With ``--bag_level patient`` a bag is a patient: ``slide_id`` is the
  patient id, ``tile_slide`` names each tile's slide, and the figures are
  the curves and the confusion matrix (attention figures are per slide).
- ``test_confusion_matrix.csv``: rows are the true class, columns the predicted one.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule, LightningModule
from pydantic import Field, PrivateAttr, model_validator
from torch import Tensor, nn
from typing_extensions import override

from himl_cpath.deepmil_data import DeepMILDataModule, class_indices, patient_bag_groups, split_slides
from himl_cpath.encoders import TileEncoder, create_encoder
from himl_cpath.mil_figures import (
    confusion_matrix,
    slide_scores,
    write_confusion_matrix,
    write_curves,
    write_figures,
)
from himl_cpath.pooling import create_pooling
from himl_cpath.slide_table import BagSource, SlideRecord, TileFileBag
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
        write_outputs: Callable[[list[dict[str, Any]], list[list[int]]], None] | None = None,
        configure: Any = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.encoder = encoder
        self.pooling = create_pooling(pooling, feature_dim, pool_hidden_dim, pool_num_layers, pool_num_heads)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.pooling.out_dim, num_classes))
        weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        self.loss_fn = nn.CrossEntropyLoss(weight=weights)
        self.val_metrics = create_metrics(num_classes)
        self.write_outputs = write_outputs
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
        predictions = probabilities.argmax(dim=1)
        for row, slide_id in enumerate(batch["slide_id"]):
            real = batch["mask"][row]
            probs = probabilities[row].tolist()
            shown = probs[1] if self.num_classes == 2 else probs[int(predictions[row])]
            xs, ys = batch["tile_x"][row][real].tolist(), batch["tile_y"][row][real].tolist()
            indices = batch["tile_index"][row][real].tolist() if "tile_index" in batch else [-1] * len(xs)
            origins = batch["tile_slide"][row] if "tile_slide" in batch else None  # patient-level bags
            extent = int(batch["extent"][row]) if "extent" in batch else -1
            for tile, (x, y, index, weight) in enumerate(
                zip(xs, ys, indices, attention[row][real].tolist(), strict=True)
            ):
                known = extent > 0 and x >= 0 and y >= 0
                self._rows.append(
                    {
                        "_bag": (self.global_rank, batch_idx, row),
                        "slide_id": slide_id,
                        "label": int(labels[row]),
                        "prediction": int(predictions[row]),
                        "probability": shown,
                        **{f"prob_{c}": p for c, p in enumerate(probs)},
                        "tile_index": index,
                        "tile_x": x,
                        "tile_y": y,
                        "right": x + extent if known else "",
                        "bottom": y + extent if known else "",
                        "attention": weight,
                        **({"tile_slide": origins[tile]} if origins is not None else {}),
                    }
                )

    @override
    def on_test_epoch_end(self) -> None:
        """Gather every process's rows, keep each slide once, log the test metrics of the slides, write outputs.

        Under DDP the test sampler may hand a slide to two processes (to even
        out the shares); metrics computed here count it once, on every
        process alike.
        """
        rows = one_per_slide(gather_rows(self._rows))
        self._rows = []
        slides = list(slide_scores(rows, self.num_classes).values())
        if slides:
            labels = torch.tensor([s.label for s in slides], dtype=torch.int64)
            probabilities = torch.tensor([s.probabilities for s in slides], dtype=torch.float32)
            metrics = create_metrics(self.num_classes)
            metrics.update(self._scores(probabilities), labels)
            self.log_dict({f"test/{name}": value.float() for name, value in metrics.compute().items()})
        counts = confusion_matrix([s.label for s in slides], [s.prediction for s in slides], self.num_classes)
        matrix: list[list[int]] = counts.tolist()
        if self.write_outputs is not None and self.trainer.is_global_zero:
            self.write_outputs(rows, matrix)

    @override
    def configure_optimizers(self) -> Any:
        parameters = [p for p in self.parameters() if p.requires_grad]
        if self._configure is not None:
            return self._configure(parameters)
        return torch.optim.Adam(parameters, lr=1e-3)


def gather_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of every process, in rank order (``rows`` itself outside DDP)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return rows
    parts: list[list[dict[str, Any]] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, rows)
    return [row for part in parts for row in (part or [])]


def one_per_slide(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with each slide's tiles from its first bag only (a slide tested twice counts once).

    Rows carry a ``_bag`` key naming the process, batch and position they
    came from; it is dropped here.
    """
    chosen: dict[str, Any] = {}
    kept = []
    for row in rows:
        bag = row.pop("_bag", None)
        if chosen.setdefault(row["slide_id"], bag) == bag:
            kept.append(row)
    return kept


def write_test_outputs(folder: Path, rows: list[dict[str, Any]], matrix: list[list[int]]) -> None:
    """``test_output.csv`` (one row per tile) and ``test_confusion_matrix.csv`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    if rows:
        columns = list(dict.fromkeys(key for row in rows for key in row))
        with (folder / TEST_OUTPUT).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, restval="")
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
    encoder_weights: str | None = Field(
        None,
        description="encoder weights: a file, URL or RUN_ID:path (an SSL checkpoint too), or 'hub' for timm's "
        "pretrained weights (needs the network); none: random weights",
    )
    encoder_seed: int = Field(0, description="seed of the random encoder weights when no file is given")
    tune_encoder: bool = Field(False, description="train the encoder too (no feature cache)")
    feature_cache: Path | None = Field(
        None, description="folder of cached tile features; default: $HIML_CACHE/cpath_features"
    )
    encoding_batch_size: int = Field(64, ge=1, description="tiles per encoder batch when caching features")
    encoding_workers: int = Field(
        2, ge=0, description="loader processes reading tiles while the encoder fills the feature cache (0: in-process)"
    )
    pooling: PoolingName = Field("attention", description="how tiles are pooled into a slide embedding")
    pool_hidden_dim: int = Field(128, ge=1, description="hidden size of the attention (and transformer feed-forward)")
    pool_num_layers: int = Field(2, ge=1, description="transformer layers of the transformer poolings")
    pool_num_heads: int = Field(4, ge=1, description="attention heads of the transformer poolings")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout before the classifier")
    tile_size: int = Field(224, ge=1, description="tile side in pixels at tile_level")
    tile_level: int = Field(0, ge=0, description="pyramid level the tiles are cut at")
    tile_overlap: int = Field(0, ge=0, description="pixels neighbouring tiles share")
    min_occupancy: float = Field(0.5, ge=0, le=1, description="least share of tissue in a kept tile")
    bag_level: Literal["slide", "patient"] = Field(
        "slide",
        description="what a bag is: a slide, or a patient (all tiles of the slides sharing a patient_id; "
        "their labels must agree; needs the feature cache)",
    )
    max_bag_size: int = Field(0, ge=0, description="tiles drawn per bag in training; 0: all")
    max_bag_size_inference: int = Field(0, ge=0, description="tiles per slide in validation and test; 0: all")
    batch_size: int = Field(4, ge=1, description="slides per batch")
    num_workers: int = Field(0, ge=0, description="loader processes reading tiles for a tuned encoder (0: in-process)")
    val_fraction: float = Field(0.2, ge=0, lt=1, description="share of the slides (per class) for validation")
    test_fraction: float = Field(0.2, ge=0, lt=1, description="share of the slides (per class) for the test")
    split_seed: int = Field(0, description="seed of the split into train, validation and test")
    slide_backend: str | None = Field(None, description="slide reader backend(s); default: OpenSlide, then the others")
    max_epochs: int = Field(50, ge=1, description="epochs to train for")
    l_rate: float = Field(1e-3, gt=0, description="the learning rate at the start of the schedule")
    figures: bool = Field(True, description="draw ROC and PR curves and attention tiles and heatmaps after the test")
    figures_top_k: int = Field(12, ge=1, description="tiles in each slide's top and bottom attention figures")
    figures_max_slides: int = Field(
        60, ge=0, description="slides with attention figures, shared over the classes, sure and unsure ones; 0: all"
    )

    _sources: list[BagSource] = PrivateAttr(default_factory=list)
    _fixed_splits: dict[str, str] = PrivateAttr(default_factory=dict)
    _encoder: TileEncoder | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _one_weight_per_class(self) -> DeepMIL:
        if self.class_weights and len(self.class_weights) != self.num_classes:
            raise ValueError(f"class_weights has {len(self.class_weights)} values for {self.num_classes} classes")
        return self

    @property
    def tiling(self) -> TilingOptions:
        return TilingOptions(self.tile_size, self.tile_level, self.tile_overlap, self.min_occupancy)

    def bag_sources(self) -> tuple[list[BagSource], dict[str, str]]:
        """The slides to learn from, and the split of those that have a fixed one.

        From ``slides_csv``, else from the first dataset folder: a PANDA
        folder, a TCGA-CRCk folder, or a folder with a ``dataset.csv``. A
        table with a ``tile_id`` column lists tiles already cut (as ``himl
        cpath tile`` writes), grouped into one bag per slide; otherwise it lists slides.
        """
        from himl_cpath.conventions import crck_bags, is_crck, is_panda, panda_slides

        if self.slides_csv is not None:
            return _table_sources(self.slides_csv)
        folders = [f for f in self.input_folders if f is not None]
        if not folders:
            raise HimlError(
                f"{type(self).__name__} needs --slides_csv, or a dataset (--local_datasets) that is a PANDA or "
                "TCGA-CRCk folder or holds a dataset.csv"
            )
        folder = folders[0]
        if is_panda(folder):
            return list(panda_slides(folder)), {}
        if is_crck(folder):
            crck, splits = crck_bags(folder)
            return list(crck), splits
        table = folder / "dataset.csv"
        if not table.is_file():
            raise HimlError(f"dataset folder {folder} is not a PANDA or TCGA-CRCk folder and has no dataset.csv")
        return _table_sources(table)

    def encoder_weights_file(self) -> Path | str | None:
        """``encoder_weights`` as a local file (a checkpoint reference is resolved), ``"hub"``, or None."""
        reference = (self.encoder_weights or "").strip()
        if not reference or reference == "hub":
            return reference or None
        from himl_kernel.checkpoints import resolve_checkpoint

        return resolve_checkpoint(reference)

    def create_encoder(self) -> TileEncoder:
        return create_encoder(
            self.encoder, weights=self.encoder_weights_file(), frozen=not self.tune_encoder, seed=self.encoder_seed
        )

    def write_outputs(self, rows: list[dict[str, Any]], matrix: list[list[int]]) -> None:
        """Write the test outputs (the CSV files, then the figures) into the run's outputs folder."""
        folder = self.outputs_folder
        sources = {s.slide_id: s for s in self._sources}
        slides = {k: v for k, v in sources.items() if isinstance(v, SlideRecord)}
        for row in rows:  # tiles that came as files: name each one, so the figures can show it
            bag = sources.get(row["slide_id"])
            if isinstance(bag, TileFileBag) and 0 <= int(row["tile_index"]) < len(bag.images):
                row["image"] = str(bag.root / bag.images[int(row["tile_index"])])
        write_test_outputs(folder, rows, matrix)
        if self.figures and self.bag_level == "patient":  # attention figures are drawn per slide
            per_patient = slide_scores(rows, self.num_classes)
            write_curves(folder, per_patient, self.num_classes)
            write_confusion_matrix(folder, per_patient, self.num_classes)
        elif self.figures:
            write_figures(
                folder,
                rows,
                slides,
                num_classes=self.num_classes,
                tile_size=self.tile_size,
                tile_level=self.tile_level,
                top_k=self.figures_top_k,
                max_slides=self.figures_max_slides,
                backend=self.slide_backend,
                tiles_root=None,  # "image" holds the whole path
            )

    def load_sources(self) -> list[BagSource]:
        """The slides, read once (:meth:`bag_sources`): a missing dataset fails before any encoder is made."""
        if not self._sources:
            self._sources, self._fixed_splits = self.bag_sources()
        return self._sources

    def tile_encoder(self) -> TileEncoder:
        """The encoder of this run, made once: the model and the feature cache share it."""
        if self._encoder is None:
            self._encoder = self.create_encoder()
        return self._encoder

    @override
    def create_model(self) -> LightningModule:
        self.load_sources()
        encoder = self.tile_encoder()
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
            write_outputs=self.write_outputs,
            configure=self.create_optimizers,
        )

    @override
    def get_data_module(self) -> LightningDataModule:
        from himl_cpath.feature_cache import cache_features, cache_folder, tiling_of
        from himl_kernel.dataset_prep import cache_dir

        records, fixed = self.load_sources(), self._fixed_splits
        slides = class_indices(records, self.num_classes)
        splits = split_slides(
            slides,
            val_fraction=self.val_fraction,
            test_fraction=self.test_fraction,
            seed=self.split_seed,
            fixed=fixed,
            crossval_count=self.crossval_count,
            crossval_index=self.crossval_index,
        )
        if self.bag_level == "patient":  # before any encoding: a patient whose slides disagree is one line now
            if self.tune_encoder:
                raise HimlError("--bag_level patient needs the feature cache (a frozen encoder): drop --tune_encoder")
            patient_bag_groups(slides)
        folder: Path | None = None
        prepare = None
        if not self.tune_encoder:
            encoder = self.tile_encoder()
            root = self.feature_cache or cache_dir() / FEATURE_CACHE_FOLDER
            folder = cache_folder(root, encoder, tiling_of(records[0], self.tiling))

            def prepare() -> None:
                _, count = cache_features(
                    records,
                    encoder,
                    self.tiling,
                    root,
                    batch_size=self.encoding_batch_size,
                    backend=self.slide_backend,
                    workers=self.encoding_workers,
                    show_progress=True,
                )
                total = len(records)
                print(
                    f"himl: encoded {count} of {total} slides into {folder} ({total - count} of {total} cached)",
                    flush=True,
                )

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
            num_workers=self.num_workers,
            patient_bags=self.bag_level == "patient",
        )


def _table_sources(table: Path) -> tuple[list[BagSource], dict[str, str]]:
    """The bags of a slides or tiles ``dataset.csv``, and the slides' ``split`` where the table has one."""
    from himl_cpath.slide_table import is_tiles_table, slides_from_csv, tile_bags_from_csv

    if not table.is_file():
        raise HimlError(f"slides table {table} does not exist")
    if is_tiles_table(table):
        bags, splits = tile_bags_from_csv(table)
        return list(bags), splits
    records = slides_from_csv(table)
    return list(records), _fixed_splits(table, [r.slide_id for r in records])


def _fixed_splits(table: Path, slide_ids: list[str]) -> dict[str, str]:
    """slide id -> split from the table's ``split`` column, where it has one (``slide_ids``: the rows' ids)."""
    with table.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if "split" not in (reader.fieldnames or []):
            return {}
        splits = [(row.get("split") or "").strip().lower() for row in reader]
    return {slide_id: split for slide_id, split in zip(slide_ids, splits, strict=True) if split}
