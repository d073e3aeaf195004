"""Named DeepMIL configurations for the two public benchmarks, TCGA-CRCk and PANDA.

Each is :class:`~himl_cpath.deepmil.DeepMIL` with the settings of a
published recipe as its defaults; every field can still be changed on the
command line. The data comes from the first dataset folder
(``--local_datasets``, or a cloud dataset): a TCGA-CRCk folder
(``CRC_DX_TRAIN``/``CRC_DX_TEST`` of MSIMUT/MSS tiles) or a PANDA folder
(``train.csv``, ``train_images``, ``train_label_masks``), read as
:mod:`himl_cpath.conventions` describes.

- ``...ImageNetMIL``: a frozen resnet18 with timm's ImageNet weights
  (``--encoder_weights hub`` asks the model hub; pass a local file where
  the network does not allow it), attention pooling.
- ``...SSLMIL``: a frozen encoder whose weights come from a
  self-supervised run, which ``--encoder_weights`` must name: ``RUN_ID`` of
  a himl-ssl run (its exported ``outputs/encoder.safetensors`` and
  ``encoder.json``, so the architecture it trained is built, whatever
  ``--encoder`` says), such an ``encoder.safetensors`` file (with its
  ``encoder.json`` beside it), or any checkpoint file, URL or ``RUN_ID:path``
  (a resnet18 found under its prefix).
- ``...TransformerMIL``: the ImageNet encoder with the transformer pooling
  of Myronenko et al. 2021 (a transformer over the tiles, then attention).

Cross-validation: ``--crossval_count 5`` trains five folds as child runs
(the test slides stay the same; each fold validates on its own fifth of the
rest), and ``himl runs aggregate`` sums them up.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

from pydantic import BaseModel, Field, model_validator

from himl_cpath.deepmil import DeepMIL, EncoderName, PoolingName
from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from himl_cpath.encoders import TileEncoder

#: What an SSL run exports into its outputs folder (himl-ssl's file names).
SSL_WEIGHTS, SSL_DESCRIPTION = "encoder.safetensors", "encoder.json"


class MILRecipe(DeepMIL):
    """What the named configurations share: a frozen ImageNet resnet18, attention pooling, bags of 1000 tiles."""

    encoder: EncoderName = Field("resnet18", description="tile encoder: resnet18, resnet50 or swin_tiny (timm)")
    encoder_weights: str | None = Field(
        "hub",
        description="encoder weights: 'hub' (timm's ImageNet weights, needs the network), or a file, URL or "
        "RUN_ID:path",
    )
    pooling: PoolingName = Field("attention", description="how tiles are pooled into a slide embedding")
    max_bag_size: int = Field(1000, ge=0, description="tiles drawn per slide in training; 0: all")
    batch_size: int = Field(8, ge=1, description="slides per batch")
    l_rate: float = Field(5e-4, gt=0, description="the learning rate at the start of the schedule")
    best_checkpoint_mode: Literal["min", "max"] = Field("max", description="whether the best metric is low or high")


class SSLEncoder(BaseModel):
    """Mixed into a recipe: the encoder's weights come from a self-supervised checkpoint, which must be named."""

    encoder_weights: str | None = Field(
        None, description="the self-supervised checkpoint of the tile encoder: a file, URL or RUN_ID:path (required)"
    )

    @model_validator(mode="after")
    def _needs_a_checkpoint(self) -> SSLEncoder:
        if not (self.encoder_weights or "").strip() or self.encoder_weights == "hub":
            raise HimlError(
                f"{type(self).__name__} needs --encoder_weights: the self-supervised checkpoint of the tile "
                "encoder (an SSL run's RUN_ID, a file, URL or RUN_ID:path)"
            )
        return self

    def ssl_export(self) -> tuple[Path, Path] | None:
        """The exported encoder (weights, description) ``encoder_weights`` names, or None for another checkpoint.

        A bare run id means that run's ``outputs/encoder.safetensors`` (when it
        has none, its checkpoint, as for any ``RUN_ID``); ``RUN_ID:...encoder.safetensors``
        or a local ``encoder.safetensors`` bring the ``encoder.json`` beside them.
        """
        from himl_kernel.checkpoints import resolve_checkpoint

        reference = (self.encoder_weights or "").strip()
        local = Path(reference)
        if local.is_file():
            description = local.with_name(SSL_DESCRIPTION)
            return (local, description) if local.name == SSL_WEIGHTS and description.is_file() else None
        if "://" in reference:
            return None
        if ":" not in reference:
            try:
                weights = resolve_checkpoint(f"{reference}:outputs/{SSL_WEIGHTS}")
            except HimlError:
                return None  # no export: the run's checkpoint, as before
            return weights, resolve_checkpoint(f"{reference}:outputs/{SSL_DESCRIPTION}")
        if reference.endswith(SSL_WEIGHTS):
            weights = resolve_checkpoint(reference)
            return weights, resolve_checkpoint(reference[: -len(SSL_WEIGHTS)] + SSL_DESCRIPTION)
        return None

    def create_encoder(self) -> TileEncoder:
        """The exported SSL encoder when ``encoder_weights`` names one, else the recipe's encoder from the file."""
        from himl_cpath.encoders import create_encoder_from_export

        recipe = cast(DeepMIL, self)
        export = self.ssl_export()
        if export is None:
            return DeepMIL.create_encoder(recipe)
        return create_encoder_from_export(*export, frozen=not recipe.tune_encoder)


class TransformerPooling(BaseModel):
    """Mixed into a recipe: the transformer pooling of Myronenko et al. 2021, with a lower learning rate."""

    pooling: PoolingName = Field("transformer_attention", description="how tiles are pooled into a slide embedding")
    pool_num_layers: int = Field(2, ge=1, description="transformer layers of the transformer poolings")
    pool_num_heads: int = Field(4, ge=1, description="attention heads of the transformer poolings")
    l_rate: float = Field(1e-4, gt=0, description="the learning rate at the start of the schedule")


class TcgaCrckImageNetMIL(MILRecipe):
    """TCGA-CRCk, MSI vs MSS from tiles already cut: frozen ImageNet resnet18, attention pooling."""

    num_classes: int = Field(2, ge=2, description="classes: MSS (0) and MSIMUT (1)")
    max_epochs: int = Field(50, ge=1, description="epochs to train for")
    best_checkpoint_metric: str = Field("val/auroc", description="the metric the best checkpoint is chosen by")


class TcgaCrckSSLMIL(SSLEncoder, TcgaCrckImageNetMIL):
    """TCGA-CRCk with a frozen encoder from a self-supervised run or checkpoint (``--encoder_weights``)."""


class TcgaCrckTransformerMIL(TransformerPooling, TcgaCrckImageNetMIL):
    """TCGA-CRCk with the ImageNet encoder and the transformer pooling of Myronenko et al. 2021."""


class PandaImageNetMIL(MILRecipe):
    """PANDA, the ISUP grade (0-5) of prostate biopsies: tiles cut at level 1, frozen ImageNet resnet18."""

    num_classes: int = Field(6, ge=2, description="classes: the ISUP grades 0 to 5")
    tile_level: int = Field(1, ge=0, description="pyramid level the tiles are cut at (PANDA's level 1: 4x down)")
    min_occupancy: float = Field(0.25, ge=0, le=1, description="least share of tissue in a kept tile")
    max_epochs: int = Field(200, ge=1, description="epochs to train for")
    best_checkpoint_metric: str = Field("val/qwk", description="the metric the best checkpoint is chosen by")


class PandaSSLMIL(SSLEncoder, PandaImageNetMIL):
    """PANDA with a frozen encoder from a self-supervised run or checkpoint (``--encoder_weights``)."""


class PandaTransformerMIL(TransformerPooling, PandaImageNetMIL):
    """PANDA with the ImageNet encoder and the transformer pooling of Myronenko et al. 2021."""
