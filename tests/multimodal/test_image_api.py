"""get_image_inference / ImageInferenceEngine: strict loading, hi-ml's preprocessing, and bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from himl_multimodal.image import ImageModel, get_image_inference
from himl_multimodal.image.transforms import ChestXrayTransform
from safetensors.torch import save_file

from himl_kernel.errors import HimlError
from tests.multimodal.conftest import save_tiny_image_model, write_grey


def _image(tmp_path: Path, width: int = 80, height: int = 64) -> Path:
    rng = np.random.default_rng(0)
    return write_grey(tmp_path / "cxr.png", rng.integers(0, 256, (height, width)))


@pytest.mark.parametrize("multi_image", [False, True])
def test_pt_round_trip_gives_the_saved_models_embeddings(tmp_path: Path, multi_image: bool) -> None:
    weights = save_tiny_image_model(tmp_path / "m.pt", multi_image=multi_image)
    kind = "biovil_t" if multi_image else "biovil"
    engine = get_image_inference(kind, weights, backbone="resnet18", resize=64, center_crop_size=64)
    original = ImageModel("resnet18", 16, multi_image=multi_image)
    original.load_state_dict(torch.load(weights, weights_only=True), strict=True)
    original.eval()
    image = _image(tmp_path)
    batch, size = engine.load_and_transform_input_image(image)
    assert size == (80, 64)
    assert batch.shape == (1, 3, 64, 64)
    with torch.no_grad():
        expected = F.normalize(original(batch).projected_global_embedding, dim=-1)[0]
    got = engine.get_projected_global_embedding(image)
    assert torch.equal(got, expected)
    assert torch.linalg.vector_norm(got).item() == pytest.approx(1.0, abs=1e-5)
    patches, shape = engine.get_projected_patch_embeddings(image)
    assert shape == (80, 64)
    assert patches.shape == (2, 2, 16)
    assert torch.allclose(torch.linalg.vector_norm(patches, dim=-1), torch.ones(2, 2), atol=1e-5)


def test_safetensors_and_lightning_checkpoints_load(tmp_path: Path) -> None:
    pt = save_tiny_image_model(tmp_path / "m.pt")
    state = torch.load(pt, weights_only=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "m.safetensors"))
    torch.save({"state_dict": {f"image_model.{k}": v for k, v in state.items()}}, tmp_path / "m.ckpt")
    image = _image(tmp_path)
    engines = [
        get_image_inference("biovil", p, backbone="resnet18", resize=64, center_crop_size=64)
        for p in (pt, tmp_path / "m.safetensors", tmp_path / "m.ckpt")
    ]
    embeddings = [engine.get_projected_global_embedding(image) for engine in engines]
    assert torch.equal(embeddings[0], embeddings[1])
    assert torch.equal(embeddings[0], embeddings[2])


def test_published_preprocessing_sizes(tmp_path: Path) -> None:
    weights = save_tiny_image_model(tmp_path / "m.pt")
    assert get_image_inference("biovil", weights, backbone="resnet18").transform == ChestXrayTransform(512, 480)
    t_weights = save_tiny_image_model(tmp_path / "t.pt", multi_image=True)
    assert get_image_inference("biovil_t", t_weights, backbone="resnet18").transform == ChestXrayTransform(512, 448)


def test_transform_resizes_short_side_crops_centre_and_keeps_0_to_1(tmp_path: Path) -> None:
    from PIL import Image

    array = np.zeros((100, 200), dtype=np.uint8)
    array[:, 100:] = 255  # right half white
    out = ChestXrayTransform(50, 40)(Image.fromarray(array))
    assert out.shape == (3, 40, 40)
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
    assert out.min().item() == 0.0 and out.max().item() == 1.0
    assert out[:, :, :15].max().item() == 0.0 and out[:, :, 25:].min().item() == 1.0


def test_bad_inputs_are_one_line_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    weights = save_tiny_image_model(tmp_path / "m.pt")
    t_weights = save_tiny_image_model(tmp_path / "t.pt", multi_image=True)
    cases = {
        "pass weights=PATH": lambda: get_image_inference("biovil"),
        "not known": lambda: get_image_inference("clip", weights),
        "neither an existing path": lambda: get_image_inference("biovil", tmp_path / "nope.pt"),
        "pass the local path": lambda: get_image_inference("biovil", "microsoft/BiomedVLP-BioViL-T"),
        "do not fit a biovil resnet18": lambda: get_image_inference("biovil", t_weights, backbone="resnet18"),
        "do not fit a biovil_t resnet18": lambda: get_image_inference("biovil_t", weights, backbone="resnet18"),
        "cannot read weights": lambda: get_image_inference("biovil", _image(tmp_path)),
        "backbone 'vgg' is not known": lambda: get_image_inference("biovil", weights, backbone="vgg"),
    }
    for expected, call in cases.items():
        with pytest.raises(HimlError) as info:
            call()
        message = str(info.value)
        assert expected in message, message
        assert "\n" not in message


def test_unsupported_or_missing_images_are_named(tmp_path: Path) -> None:
    engine = get_image_inference(
        "biovil", save_tiny_image_model(tmp_path / "m.pt"), backbone="resnet18", resize=64, center_crop_size=64
    )
    (tmp_path / "x.gif").write_bytes(b"GIF89a")
    with pytest.raises(HimlError, match=r"unsupported type '\.gif'"):
        engine.get_projected_global_embedding(tmp_path / "x.gif")
    with pytest.raises(HimlError, match="does not exist"):
        engine.get_projected_global_embedding(tmp_path / "missing.png")
