"""Tile encoders from timm (random or local weights, frozen or not) and the feature cache over slides."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from himl_cpath.datasets import SlideTilesDataset
from himl_cpath.deepmil_data import FeatureBags, LabelledSlide
from himl_cpath.encoders import ENCODERS, create_encoder, create_encoder_from_export
from himl_cpath.feature_cache import cache_features, load_features
from himl_cpath.slide_table import SlideRecord
from himl_cpath.synthetic import SyntheticSlide
from himl_cpath.tiling import TilingOptions

from himl_kernel.errors import HimlError


def tiles(count: int = 2, size: int = 224) -> torch.Tensor:
    return torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(("name", "width"), [("resnet18", 512), ("resnet50", 2048), ("swin_tiny", 768)])
def test_each_encoder_gives_one_feature_vector_per_tile(name: str, width: int) -> None:
    encoder = create_encoder(name)
    assert encoder.num_features == width
    assert encoder(tiles()).shape == (2, width)


def test_random_weights_are_the_same_for_the_same_seed() -> None:
    first, again = create_encoder("resnet18", seed=3), create_encoder("resnet18", seed=3)
    other = create_encoder("resnet18", seed=4)
    batch = tiles()
    torch.testing.assert_close(first(batch), again(batch))
    assert first.identity == again.identity == "resnet18-random3" and other.identity != first.identity
    assert not torch.allclose(first(batch), other(batch))


def test_weights_come_from_a_local_file_and_the_classifier_is_ignored(tmp_path: Path) -> None:
    import timm

    torch.manual_seed(11)
    classifier = timm.create_model("resnet18", pretrained=False, num_classes=1000)
    path = tmp_path / "resnet18.pth"
    torch.save(classifier.state_dict(), path)
    encoder = create_encoder("resnet18", weights=path)
    torch.testing.assert_close(encoder.backbone.conv1.weight, classifier.conv1.weight)
    assert encoder.identity.startswith("resnet18-") and "random" not in encoder.identity


def test_the_encoder_of_a_self_supervised_checkpoint_is_found_under_its_prefix(tmp_path: Path) -> None:
    torch.manual_seed(12)
    trained = create_encoder("resnet18", seed=12)
    state = {f"model.encoder.{key}": value for key, value in trained.backbone.state_dict().items()}
    state["model.projector.0.weight"] = torch.zeros(128, 512)
    path = tmp_path / "ssl.ckpt"
    torch.save({"state_dict": state, "epoch": 3}, path)
    encoder = create_encoder("resnet18", weights=path)
    torch.testing.assert_close(encoder(tiles()), trained(tiles()))


def test_weights_of_another_model_fail_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "wrong.pth"
    torch.save({"something.weight": torch.zeros(3)}, path)
    with pytest.raises(HimlError, match="do not fit resnet18") as caught:
        create_encoder("resnet18", weights=path)
    assert "\n" not in str(caught.value)
    with pytest.raises(HimlError, match="do not exist"):
        create_encoder("resnet18", weights=tmp_path / "missing.pth")
    with pytest.raises(HimlError, match="known: " + ", ".join(ENCODERS)):
        create_encoder("vgg16")


def test_a_frozen_encoder_takes_no_gradients_and_stays_in_eval_mode() -> None:
    frozen = create_encoder("resnet18", frozen=True).train()
    assert not frozen.backbone.training
    assert all(not p.requires_grad for p in frozen.parameters())
    assert not frozen(tiles()).requires_grad
    tuned = create_encoder("resnet18", frozen=False).train()
    assert tuned.backbone.training
    tuned(tiles()).sum().backward()  # type: ignore[no-untyped-call]
    assert tuned.backbone.conv1.weight.grad is not None


def test_features_are_cached_once_per_slide_and_encoder(small_slide: SyntheticSlide, tmp_path: Path) -> None:
    record = SlideRecord("small", small_slide.path, "1")
    options = TilingOptions(tile_size=224)
    encoder = create_encoder("resnet18")
    folder, encoded = cache_features([record], encoder, options, tmp_path / "cache", batch_size=16)
    assert encoded == 1 and folder.parts[-2] == "resnet18-random0"
    cached = load_features(folder, "small")
    bag = SlideTilesDataset([record], options)[0]
    assert cached.tile_x.tolist() == bag["tile_x"].tolist() and cached.tile_y.tolist() == bag["tile_y"].tolist()
    torch.testing.assert_close(cached.features, encoder(torch.from_numpy(bag["image"])), atol=1e-4, rtol=1e-4)

    assert cache_features([record], encoder, options, tmp_path / "cache")[1] == 0  # nothing to do
    other = create_encoder("resnet18", seed=1)
    other_folder, encoded = cache_features([record], other, options, tmp_path / "cache")
    assert encoded == 1 and other_folder != folder
    stat = small_slide.path.stat()
    os.utime(small_slide.path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert cache_features([record], encoder, options, tmp_path / "cache")[1] == 1  # the slide changed

    # bags read the entry from memory or, past the memory budget, from disk: the same either way
    slides = [LabelledSlide(record, 1)]
    in_memory, from_disk = FeatureBags(folder, slides), FeatureBags(folder, slides, memory_budget=0)
    assert list(in_memory.kept) == [0] and not from_disk.kept
    first, second = in_memory[0], from_disk[0]
    assert cached.extent == 224 and first["extent"] == second["extent"] == 224
    torch.testing.assert_close(first["features"], second["features"], atol=0, rtol=0)
    assert first["tile_x"].tolist() == second["tile_x"].tolist() == cached.tile_x.tolist()


def _ssl_export(folder: Path, **changes: object) -> tuple[Path, Path, dict[str, torch.Tensor]]:
    """What a himl-ssl run exports, written by hand: a CIFAR-stem resnet18's weights and their description."""
    import json

    import timm
    from safetensors.torch import save_file

    network = timm.create_model("resnet18", pretrained=False, num_classes=0)
    network.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    network.maxpool = torch.nn.Identity()
    weights = {k: v.contiguous() for k, v in network.state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(folder / "encoder.safetensors"))
    description = {
        "format": "himl-ssl-encoder/1", "architecture": "cifar_resnet18", "timm_name": "resnet18",
        "cifar_stem": True, "feature_size": 512, "input_size": 32,
        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "method": "SimCLR", **changes,
    }  # fmt: skip
    (folder / "encoder.json").write_text(json.dumps(description))
    return folder / "encoder.safetensors", folder / "encoder.json", weights


def test_an_ssl_export_builds_the_architecture_it_describes(tmp_path: Path) -> None:
    weights, description, tensors = _ssl_export(tmp_path)
    encoder = create_encoder_from_export(weights, description)
    assert encoder.name == "cifar_resnet18" and encoder.num_features == 512 and encoder.frozen
    assert tuple(encoder.backbone.conv1.weight.shape) == (64, 3, 3, 3)
    for key, value in encoder.backbone.state_dict().items():
        torch.testing.assert_close(value, tensors[key])
    assert encoder(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)).shape == (2, 512)


def test_a_wrong_ssl_export_is_one_line(tmp_path: Path) -> None:
    weights, description, _ = _ssl_export(tmp_path / "other_format", format="something-else")
    with pytest.raises(HimlError, match="not an SSL encoder export"):
        create_encoder_from_export(weights, description)
    weights, description, _ = _ssl_export(tmp_path / "no_stem", cifar_stem=False)
    with pytest.raises(HimlError, match="do not fit cifar_resnet18"):
        create_encoder_from_export(weights, description)
    weights, description, _ = _ssl_export(tmp_path / "mean", mean=[0.5, 0.5, 0.5])
    with pytest.raises(HimlError, match=r"mean .* is not ImageNet's"):
        create_encoder_from_export(weights, description)
