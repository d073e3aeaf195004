"""Text side of the vision-language models: CXR-BERT and its inference engine."""

from __future__ import annotations

from himl_multimodal.text.inference import BertEncoderType, TextInferenceEngine, get_bert_inference
from himl_multimodal.text.model import CXRBertConfig, CXRBertModel

__all__ = ["BertEncoderType", "CXRBertConfig", "CXRBertModel", "TextInferenceEngine", "get_bert_inference"]
