"""CXR-BERT: a BERT masked-language model with a projection head on the [CLS] token.

Importing this module registers the model type ``cxr-bert`` with transformers' Auto classes, so a
local Hugging Face folder whose ``config.json`` says ``"model_type": "cxr-bert"`` loads through
``AutoModel.from_pretrained(folder)`` without ``trust_remote_code``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, BertConfig, BertForMaskedLM
from transformers.utils import ModelOutput  # type: ignore[attr-defined]

MODEL_TYPE = "cxr-bert"


class CXRBertConfig(BertConfig):  # type: ignore[no-untyped-call]
    """BERT's configuration plus ``projection_size``, the width of the joint image-text space."""

    model_type = MODEL_TYPE

    def __init__(self, projection_size: int = 128, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.projection_size = projection_size


@dataclass
class CXRBertOutput(ModelOutput):
    """Masked-LM logits, the last hidden states and (when asked) the projected [CLS] embedding."""

    last_hidden_state: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    cls_projected_embedding: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class BertProjectionHead(nn.Module):
    """[CLS] hidden state -> joint space: linear, GELU, layer norm, linear."""

    def __init__(self, config: CXRBertConfig) -> None:
        super().__init__()
        self.dense_to_hidden = nn.Linear(config.hidden_size, config.projection_size)
        self.transform_act_fn = nn.GELU()
        self.LayerNorm = nn.LayerNorm(config.projection_size, eps=config.layer_norm_eps)
        self.dense_to_output = nn.Linear(config.projection_size, config.projection_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        x = self.LayerNorm(self.transform_act_fn(self.dense_to_hidden(hidden_states)))
        return self.dense_to_output(x)  # type: ignore[no-any-return]


class CXRBertModel(BertForMaskedLM):  # type: ignore[no-untyped-call]
    """BERT masked-LM (``bert.*``, ``cls.predictions.*``) with ``cls_projection_head`` for image-text alignment."""

    config_class = CXRBertConfig
    # Checkpoints written by older transformers carry the position-id buffer; it is recomputed, not loaded.
    _keys_to_ignore_on_load_unexpected = [r"position_ids"]

    def __init__(self, config: CXRBertConfig) -> None:
        super().__init__(config)
        self.cls_projection_head = BertProjectionHead(config)
        self.post_init()  # type: ignore[no-untyped-call]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        output_cls_projected_embedding: bool = False,
        **kwargs: Any,
    ) -> CXRBertOutput:
        kwargs.pop("return_dict", None)
        kwargs.pop("output_hidden_states", None)
        out = super().forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            output_hidden_states=True,
            return_dict=True,
            **kwargs,
        )
        last = out.hidden_states[-1]
        projected = self.cls_projection_head(last[:, 0, :]) if output_cls_projected_embedding else None
        return CXRBertOutput(
            last_hidden_state=last,
            logits=out.logits,
            cls_projected_embedding=projected,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )

    def get_projected_text_embeddings(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, normalize_embeddings: bool = True
    ) -> torch.Tensor:
        """The projected [CLS] embeddings ``(B, projection_size)``, L2-normalised when ``normalize_embeddings``."""
        out = self.forward(input_ids=input_ids, attention_mask=attention_mask, output_cls_projected_embedding=True)
        projected = out.cls_projected_embedding
        assert projected is not None
        return F.normalize(projected, dim=1) if normalize_embeddings else projected


def register_auto_classes() -> None:
    """Register ``cxr-bert`` with AutoConfig, AutoModel and AutoModelForMaskedLM (idempotent)."""
    with contextlib.suppress(ValueError):  # already registered in this process
        AutoConfig.register(MODEL_TYPE, CXRBertConfig)
    for auto in (AutoModel, AutoModelForMaskedLM):
        with contextlib.suppress(ValueError):
            auto.register(CXRBertConfig, CXRBertModel)


def published_config(**overrides: Any) -> CXRBertConfig:
    """The published CXR-BERT sizes: BERT-base, vocabulary 30522, projection 128 (``overrides`` change any)."""
    sizes: dict[str, Any] = {
        "vocab_size": 30522,
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "max_position_embeddings": 512,
        "projection_size": 128,
    }
    sizes.update(overrides)
    return CXRBertConfig(**sizes)


#: Parts of a plain BERT encoder checkpoint that CXR-BERT has no place for (its masked-LM BERT has no pooler).
UNUSED_BERT_PREFIXES = ("pooler.",)


def load_bert_weights(model: CXRBertModel, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Load a plain BERT encoder's weights (``BertModel`` names, with or without ``bert.``) into ``model.bert``.

    Strict: every parameter of ``model.bert`` must be given, with its shape, and every given key must be used,
    except the pooler's (listed in the return value) and the ``position_ids`` buffer of older checkpoints.
    """
    renamed: dict[str, torch.Tensor] = {}
    skipped: list[str] = []
    for key, value in state.items():
        name = key[len("bert.") :] if key.startswith("bert.") else key
        if name.startswith(UNUSED_BERT_PREFIXES) or name.endswith("position_ids"):
            skipped.append(key)
            continue
        renamed[name] = value
    model.bert.load_state_dict(renamed, strict=True)
    return skipped


register_auto_classes()
