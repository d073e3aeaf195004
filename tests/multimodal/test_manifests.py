"""The models' parameter names and shapes equal those of the published checkpoints, exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from himl_multimodal.image.model import ImageModel
from himl_multimodal.text.model import CXRBertModel, published_config

#: A copy of the shared manifest of the three published checkpoints (names and shapes only).
MANIFEST = Path(__file__).with_name("data") / "published_checkpoints.json"


def _manifest(name: str) -> dict[str, list[int]]:
    entries: dict[str, list[int]] = json.loads(MANIFEST.read_text())[name]
    return entries


def _shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {name: list(t.shape) for name, t in module.state_dict().items()}


@pytest.mark.parametrize(("name", "multi_image"), [("biovil_image", False), ("biovil_t_image", True)])
def test_image_model_matches_published_checkpoint(name: str, multi_image: bool) -> None:
    shapes = _shapes(ImageModel("resnet50", 128, multi_image=multi_image))
    expected = _manifest(name)
    assert sorted(set(shapes) ^ set(expected)) == []
    assert shapes == expected


def test_cxr_bert_matches_published_checkpoint() -> None:
    with torch.device("meta"):
        model = CXRBertModel(published_config())
    shapes = _shapes(model)
    expected = _manifest("cxr_bert")
    assert sorted(set(shapes) ^ set(expected)) == []
    assert shapes == expected


def test_biovil_t_projects_from_512_and_pools_with_three_blocks() -> None:
    model = ImageModel("resnet50", 128, multi_image=True)
    assert model.projector.model[0].in_channels == 512
    pooler = model.encoder.vit_pooler  # type: ignore[union-attr]
    assert len(pooler.blocks) == 3
    assert pooler.blocks[0].attn.num_heads == 8
