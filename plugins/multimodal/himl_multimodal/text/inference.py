"""hi-ml's text inference API: ``get_bert_inference`` and ``TextInferenceEngine``, from a local model folder."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

import torch

from himl_kernel.errors import HimlError
from himl_multimodal.text.model import CXRBertModel
from himl_multimodal.weights import resolve_weights

#: hi-ml's models use at most this many tokens per prompt.
MAX_LENGTH = 512


class BertEncoderType(str, enum.Enum):
    """The published text encoders (the same architecture; BioViL-T's was trained further)."""

    CXR_BERT = "cxr_bert"
    BIOVIL_T_BERT = "biovil_t_bert"


def _encoder_type(value: BertEncoderType | str) -> BertEncoderType:
    try:
        return BertEncoderType(value.value if isinstance(value, BertEncoderType) else str(value).lower())
    except ValueError:
        known = ", ".join(t.value for t in BertEncoderType)
        raise HimlError(f"bert_encoder_type {value!r} is not known; expected one of {known}") from None


class TextInferenceEngine:
    """Tokenises prompts and returns CXR-BERT's projected embeddings, similarities and masked-token guesses."""

    def __init__(self, tokenizer: Any, text_model: CXRBertModel) -> None:
        self.tokenizer = tokenizer
        self.model = text_model
        self.model.train(False)
        self.device = torch.device("cpu")

    def to(self, device: torch.device | str) -> None:
        """Move the model to ``device``."""
        self.device = torch.device(device)
        self.model.to(self.device)  # type: ignore[arg-type]

    def tokenize_input_prompts(self, prompts: str | list[str]) -> Any:
        """Token ids and attention mask of ``prompts`` (one sentence each), padded to the longest."""
        texts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise HimlError(f"prompts: expected one or more non-empty strings, got {prompts!r}")
        tokens = self.tokenizer(
            texts,
            add_special_tokens=True,
            padding="longest",
            truncation=True,
            max_length=MAX_LENGTH,
            return_tensors="pt",
        )
        return tokens.to(self.device)

    @torch.no_grad()
    def get_embeddings_from_prompt(self, prompts: str | list[str], normalize: bool = True) -> torch.Tensor:
        """Projected [CLS] embeddings ``(N, joint_dim)`` of ``prompts``, L2-normalised when ``normalize``."""
        tokens = self.tokenize_input_prompts(prompts)
        embeddings: torch.Tensor = self.model.get_projected_text_embeddings(
            input_ids=tokens.input_ids, attention_mask=tokens.attention_mask, normalize_embeddings=normalize
        )
        return embeddings

    @torch.no_grad()
    def get_pairwise_similarities(self, prompt_set_1: str | list[str], prompt_set_2: str | list[str]) -> torch.Tensor:
        """Cosine similarity of each prompt of the first set with the prompt at the same place in the second."""
        first = self.get_embeddings_from_prompt(prompt_set_1)
        second = self.get_embeddings_from_prompt(prompt_set_2)
        if first.shape != second.shape:
            raise HimlError(f"prompt sets differ in length: {first.shape[0]} and {second.shape[0]}")
        return (first * second).sum(dim=1)

    @torch.no_grad()
    def predict_masked_tokens(self, prompts: str | list[str]) -> list[list[str]]:
        """For each prompt, the most likely token at each ``[MASK]``."""
        tokens = self.tokenize_input_prompts(prompts)
        logits = self.model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask).logits
        mask_id = self.tokenizer.mask_token_id
        guesses: list[list[str]] = []
        for row, ids in zip(logits, tokens.input_ids, strict=True):
            where = (ids == mask_id).nonzero(as_tuple=True)[0]
            best = row[where].argmax(dim=-1).tolist()
            guesses.append([str(t) for t in self.tokenizer.convert_ids_to_tokens(best)])
        return guesses


def load_tokenizer(folder: Path) -> Any:
    """The folder's tokenizer (BERT's WordPiece: ``vocab.txt`` or ``tokenizer.json``)."""
    from transformers import BertTokenizer

    try:
        return BertTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError, TypeError):
        pass
    raise HimlError(f"text model {folder}: no BERT tokenizer files (vocab.txt or tokenizer.json)")


def load_text_model(folder: str | Path) -> CXRBertModel:
    """CXR-BERT from a Hugging Face folder (``config.json`` and weights), with strict key matching."""
    path = resolve_weights(folder, "text model", want_folder=True)
    if not (path / "config.json").is_file():
        raise HimlError(f"text model {path}: no config.json; expected a Hugging Face model folder")
    try:
        loaded: Any = CXRBertModel.from_pretrained(str(path), output_loading_info=True)
    except (OSError, ValueError) as exc:
        raise HimlError(f"cannot load the text model from {path}: {str(exc).splitlines()[0]}") from exc
    model: CXRBertModel = loaded[0]
    info: dict[str, Any] = loaded[1]
    missing = [k for k in info.get("missing_keys", []) if "position_ids" not in k]
    unexpected = [k for k in info.get("unexpected_keys", []) if "position_ids" not in k]
    mismatched = list(info.get("mismatched_keys", []))
    if missing or unexpected or mismatched:
        raise HimlError(
            f"text model {path} does not match CXR-BERT: missing {missing[:3]}, unexpected {unexpected[:3]}, "
            f"mismatched {mismatched[:3]}"
        )
    model.train(False)
    return model


def get_bert_inference(
    bert_encoder_type: BertEncoderType | str = BertEncoderType.BIOVIL_T_BERT, model: str | Path | None = None
) -> TextInferenceEngine:
    """A ``TextInferenceEngine`` for CXR-BERT or BioViL-T's BERT from ``model`` (a folder or a hub name)."""
    kind = _encoder_type(bert_encoder_type)
    if model is None:
        raise HimlError(f"get_bert_inference({kind.value!r}): pass model=DIR, a local Hugging Face folder")
    folder = resolve_weights(model, "text model", want_folder=True)
    return TextInferenceEngine(load_tokenizer(folder), load_text_model(folder))
