"""The LightningModule of ImageTextContrastive: a CLIP-style global loss, and optionally hi-ml's local alignment."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule

from himl_multimodal.image.model import ImageModel
from himl_multimodal.text.model import CXRBertModel

#: Where the trained models are written under the run's outputs, in the forms the inference API loads.
IMAGE_WEIGHTS = "image_model.pt"
TEXT_FOLDER = "text_model"


def same_report_targets(reports: list[str], device: torch.device) -> torch.Tensor:
    """Row-normalised targets: a pair's positives are all pairs whose report is the same text."""
    equal = torch.tensor([[a == b for b in reports] for a in reports], dtype=torch.float32, device=device)
    return equal / equal.sum(dim=1, keepdim=True)


def contrastive_loss(image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor, reports: list[str]) -> torch.Tensor:
    """Symmetric cross-entropy of the scaled cosine similarities; identical reports share their targets."""
    logits = scale * F.normalize(image, dim=1) @ F.normalize(text, dim=1).t()
    targets = same_report_targets(reports, image.device)
    image_to_text = -(targets * logits.log_softmax(dim=1)).sum(dim=1).mean()
    text_to_image = -(targets * logits.t().log_softmax(dim=1)).sum(dim=1).mean()
    return (image_to_text + text_to_image) / 2


def local_alignment(patches: torch.Tensor, text: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Each report's image embedding pooled over patches by attention to the report: ``(B, B, C)`` for all pairs."""
    grid = F.normalize(patches.flatten(2), dim=1)  # B_img, C, N
    words = F.normalize(text, dim=1)  # B_txt, C
    attention = torch.einsum("tc,icn->tin", words, grid).div(temperature).softmax(dim=-1)
    return torch.einsum("tin,icn->tic", attention, grid)


class ImageTextModule(LightningModule):
    """Trains ``image_model`` and ``text_model`` into one joint space; writes both when fitting ends."""

    def __init__(
        self,
        image_model: ImageModel,
        text_model: CXRBertModel,
        tokenizer: Any,
        configure: Callable[[Any], Any],
        output_folder: Callable[[], Path],
        temperature: float = 0.07,
        local_loss_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.image_model = image_model
        self.text_model = text_model
        self.tokenizer = tokenizer
        self._configure = configure
        self._output_folder = output_folder
        self.local_loss_weight = local_loss_weight
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    def _losses(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image = self.image_model(batch["image"])
        text_out = self.text_model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_cls_projected_embedding=True
        )
        text = text_out.cls_projected_embedding
        scale = self.logit_scale.exp().clamp(max=100.0)
        loss = contrastive_loss(image.projected_global_embedding, text, scale, batch["report"])
        if self.local_loss_weight > 0:
            pooled = local_alignment(image.projected_patch_embeddings, text)  # report t, image i
            logits = scale * (pooled * F.normalize(text, dim=1)[:, None, :]).sum(-1)  # (texts, images)
            targets = same_report_targets(batch["report"], logits.device)
            local = -(targets * logits.log_softmax(dim=1)).sum(dim=1).mean()
            loss = loss + self.local_loss_weight * local
        return loss, F.normalize(image.projected_global_embedding, dim=1), F.normalize(text, dim=1)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, _, _ = self._losses(batch)
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(batch["report"]))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _evaluate(self, batch: dict[str, Any], stage: str) -> None:
        loss, images, texts = self._losses(batch)
        size = len(batch["report"])
        self.log(f"{stage}/loss", loss, on_epoch=True, batch_size=size, sync_dist=True)
        # zero-shot accuracy among the batch's distinct reports: is each image closest to its own report?
        reports = list(dict.fromkeys(batch["report"]))
        if len(reports) > 1:
            first = [batch["report"].index(r) for r in reports]
            choice = (images @ texts[first].t()).argmax(dim=1)
            truth = torch.tensor([reports.index(r) for r in batch["report"]], device=choice.device)
            accuracy = (choice == truth).float().mean()
            self.log(f"{stage}/zero_shot_accuracy", accuracy, on_epoch=True, batch_size=size, sync_dist=True)

    def configure_optimizers(self) -> Any:
        return self._configure(self.parameters())

    def on_fit_end(self) -> None:
        if self.trainer.is_global_zero:
            save_trained_models(self.image_model, self.text_model, self.tokenizer, self._output_folder())


def save_trained_models(image_model: ImageModel, text_model: CXRBertModel, tokenizer: Any, folder: Path) -> Path:
    """Write ``image_model.pt`` (a state dict), ``image_model.json`` (its backbone) and ``text_model/``.

    The text folder is a Hugging Face model folder with its tokenizer.
    """
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in image_model.state_dict().items()}
    torch.save(state, folder / IMAGE_WEIGHTS)
    record = {
        "backbone": image_model.backbone,
        "feature_stage": image_model.feature_stage,
        "multi_image": image_model.multi_image,
    }
    (folder / IMAGE_WEIGHTS).with_suffix(".json").write_text(json.dumps(record) + "\n")
    text_model.save_pretrained(folder / TEXT_FOLDER)
    tokenizer.save_pretrained(str(folder / TEXT_FOLDER))
    print(f"himl: wrote {folder / IMAGE_WEIGHTS} and {folder / TEXT_FOLDER}", flush=True)
    return folder
