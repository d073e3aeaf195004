"""Tiny models and images for the multimodal tests: built here, saved to tmp folders, nothing downloaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from himl_multimodal.image.model import ImageModel
from himl_multimodal.text.model import CXRBertConfig, CXRBertModel
from PIL import Image

#: A small BERT vocabulary: special tokens, letters and the words the tests use.
WORDS = ["left", "right", "opacity", "in", "the", "lung", "no", "normal", "chest", "effusion", "there", "is", "a"]


def write_vocab(folder: Path) -> Path:
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *"abcdefghijklmnopqrstuvwxyz"]
    path = folder / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n")
    return path


def tiny_bert_config(vocab_size: int, projection_size: int = 16) -> CXRBertConfig:
    return CXRBertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=48,
        max_position_embeddings=64,
        projection_size=projection_size,
    )


def save_tiny_text_model(folder: Path, seed: int = 0, projection_size: int = 16) -> Path:
    """A random tiny CXR-BERT with its tokenizer, saved as a Hugging Face folder."""
    from transformers import BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = write_vocab(folder)
    torch.manual_seed(seed)
    model = CXRBertModel(tiny_bert_config(len(vocab.read_text().split()), projection_size))
    model.save_pretrained(folder)
    BertTokenizer(str(vocab)).save_pretrained(folder)
    return folder


def save_tiny_image_model(path: Path, multi_image: bool = False, seed: int = 0, joint: int = 16) -> Path:
    """A random ResNet-18 image model (BN statistics made non-trivial), saved as a plain state dict."""
    torch.manual_seed(seed)
    model = ImageModel("resnet18", joint, multi_image=multi_image)
    model.train()
    with torch.no_grad():
        model(torch.rand(2, 3, 64, 64))
    torch.save(model.state_dict(), path)
    return path


def write_grey(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array.astype(np.uint8), mode="L").save(path)
    return path


@pytest.fixture
def text_folder(tmp_path: Path) -> Path:
    return save_tiny_text_model(tmp_path / "text")


@pytest.fixture
def image_weights(tmp_path: Path) -> Path:
    return save_tiny_image_model(tmp_path / "image.pt")
