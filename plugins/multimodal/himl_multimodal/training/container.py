"""``ImageTextContrastive``: train or fine-tune BioViL-style image and CXR-BERT text models on (image, report) pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule
from pydantic import Field, PrivateAttr

from himl_kernel.errors import HimlError
from himl_kernel.lightning.container import LightningContainer
from himl_multimodal.image.model import RESNETS


class ImageTextContrastive(LightningContainer):
    """Contrastive image-text training (CLIP-style global loss, optional local phrase-patch alignment).

    The run's outputs hold ``image_model.pt`` and ``text_model/``, which ``get_image_inference(..., weights=...)``
    and ``get_bert_inference(..., model=...)`` load; a run's ``RUN_ID:image_model.pt`` works too.
    """

    pairs: Path | None = Field(
        None,
        description="CSV of (image, report) pairs, or a folder of images each with a .txt report; "
        "default: the first dataset folder's pairs.csv",
    )
    image_backbone: str = Field(
        "resnet50",
        description=f"torchvision ResNet ({', '.join(RESNETS)}), the published layout; or timm:NAME, any timm model "
        "with feature maps (random init), its last feature map projected to the joint space",
    )
    image_feature_stage: int = Field(
        -1,
        description="for a timm:NAME backbone, which of its feature stages is the patch grid (-1: the last; "
        "earlier ones are finer and see less of the image around each patch)",
    )
    image_weights: str | None = Field(None, description="image model to start from: a file or RUN_ID:path")
    multi_image: bool = Field(False, description="a BioViL-T image model (ViT pooler) instead of BioViL's")
    text_model: Path | None = Field(
        None, description="CXR-BERT folder to fine-tune; none: a small BERT from scratch on the reports' words"
    )
    text_hidden_size: int = Field(128, ge=8, description="width of a from-scratch BERT")
    text_layers: int = Field(2, ge=1, description="layers of a from-scratch BERT")
    text_heads: int = Field(2, ge=1, description="attention heads of a from-scratch BERT")
    joint_feature_size: int = Field(128, ge=2, description="width of the joint space")
    resize: int = Field(512, ge=8, description="images are resized to this short side")
    crop_size: int = Field(480, ge=8, description="then centre-cropped to this square")
    batch_size: int = Field(16, ge=2, description="pairs per batch")
    temperature: float = Field(0.07, gt=0, description="initial temperature of the contrastive softmax")
    local_loss_weight: float = Field(0.0, ge=0, description="weight of the local phrase-patch alignment loss")
    val_fraction: float = Field(0.2, gt=0, lt=1, description="share of the pairs kept for validation")
    max_epochs: int = Field(20, ge=1, description="epochs to train for")
    l_rate: float = Field(1e-3, gt=0, description="the learning rate at the start of the schedule")

    _tokenizer: Any = PrivateAttr(None)

    def _pairs_source(self) -> Path:
        if self.pairs is not None:
            return self.pairs
        folders = [f for f in self.input_folders if f is not None]
        if not folders:
            raise HimlError("ImageTextContrastive: pass --pairs CSV_OR_FOLDER (or a dataset holding pairs.csv)")
        return folders[0] / "pairs.csv"

    def _pairs(self) -> list[Any]:
        from himl_multimodal.training.data import read_pairs

        return read_pairs(self._pairs_source())

    def tokenizer(self) -> Any:
        """The text model's tokenizer; for a from-scratch BERT, one whose vocabulary is the reports' words."""
        if self._tokenizer is None:
            from transformers import BertTokenizer

            if self.text_model is not None:
                from himl_multimodal.text.inference import load_tokenizer

                self._tokenizer = load_tokenizer(self.text_model)
            else:
                from himl_multimodal.training.data import build_vocabulary

                vocab = build_vocabulary([p.report for p in self._pairs()], self.outputs_folder / "vocabulary")
                self._tokenizer = BertTokenizer(str(vocab))
        return self._tokenizer

    def _text_model(self) -> Any:
        from himl_multimodal.text.model import CXRBertConfig, CXRBertModel

        if self.text_model is not None:
            from himl_multimodal.text.inference import load_text_model

            return load_text_model(self.text_model)
        config = CXRBertConfig(
            vocab_size=len(self.tokenizer().vocab),
            hidden_size=self.text_hidden_size,
            num_hidden_layers=self.text_layers,
            num_attention_heads=self.text_heads,
            intermediate_size=2 * self.text_hidden_size,
            max_position_embeddings=128,
            projection_size=self.joint_feature_size,
        )
        return CXRBertModel(config)

    def _image_model(self) -> Any:
        from himl_multimodal.image.model import check_backbone

        try:
            check_backbone(self.image_backbone)
        except ValueError as exc:
            raise HimlError(f"ImageTextContrastive: {exc}") from None
        if self.image_weights is not None:
            from himl_multimodal.image.inference import load_image_model

            kind = "biovil_t" if self.multi_image else "biovil"
            return load_image_model(self.image_weights, kind, self.image_backbone)
        from himl_multimodal.image.model import ImageModel

        try:
            return ImageModel(
                self.image_backbone,
                self.joint_feature_size,
                multi_image=self.multi_image,
                feature_stage=self.image_feature_stage,
            )
        except ValueError as exc:
            raise HimlError(f"ImageTextContrastive: {exc}") from None

    def create_model(self) -> LightningModule:
        from himl_multimodal.training.module import ImageTextModule

        text = self._text_model()
        image = self._image_model()
        if text.config.projection_size != image.joint_feature_size:
            raise HimlError(
                f"the text model projects to {text.config.projection_size} and the image model to "
                f"{image.joint_feature_size}; they must share the joint space"
            )
        return ImageTextModule(
            image,
            text,
            self.tokenizer(),
            configure=self.create_optimizers,
            output_folder=lambda: self.outputs_folder,
            temperature=self.temperature,
            local_loss_weight=self.local_loss_weight,
        )

    def get_data_module(self) -> LightningDataModule:
        from himl_multimodal.image.transforms import ChestXrayTransform
        from himl_multimodal.training.data import PairDataModule, split_pairs

        train, val = split_pairs(self._pairs(), self.val_fraction, self.effective_random_seed)
        transform = ChestXrayTransform(self.resize, self.crop_size)
        return PairDataModule(train, val, transform, self.tokenizer(), self.batch_size)
