"""``himl run --model ImageTextContrastive``: a timm image backbone trains, and the run's outputs load through the
inference API, by path and as ``RUN_ID:path`` (the kernel's checkpoint sources find the local run)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from himl_multimodal.image.inference import get_image_inference
from himl_multimodal.image.io import load_image
from himl_multimodal.image.model import ImageModel
from himl_multimodal.image.transforms import ChestXrayTransform
from himl_multimodal.synthetic import REPORTS, write_left_right_pairs
from himl_multimodal.text.inference import get_bert_inference
from himl_multimodal.training.module import IMAGE_WEIGHTS, TEXT_FOLDER

from himl_kernel.errors import HimlError
from himl_kernel.runstore import RunStore, StoredRun

from ..conftest import error_lines, run_himl

#: The tests run `himl run` in subprocesses: a tiny training run and a refused one (20-45 s each here).
pytestmark = pytest.mark.slow

#: A tiny run: 32-pixel images, timm's resnet18 cut after its second stage, a 1-layer text model, 2 epochs.
TINY = (
    "--image_backbone", "timm:resnet18", "--image_feature_stage", "2", "--joint_feature_size", "16",
    "--text_hidden_size", "16", "--text_layers", "1", "--resize", "32", "--crop_size", "32",
    "--batch_size", "4", "--max_epochs", "2", "--pl_num_sanity_val_steps", "0",
)  # fmt: skip


@dataclass(frozen=True)
class Trained:
    run: StoredRun
    outputs: Path
    home: Path
    pairs: Path


def _env(root: Path) -> dict[str, str]:
    return {"HIML_HOME": str(root / "home"), "HIML_CACHE": str(root / "cache")}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("contrastive")
    table = write_left_right_pairs(root / "pairs", 12, size=40, with_normal=True)
    result = run_himl("run", "--model", "ImageTextContrastive", "--pairs", str(table), *TINY, cwd=root, env=_env(root))
    assert result.returncode == 0, result.stderr[-3000:]
    store = RunStore(home=root / "home")
    (run,) = store.list_runs("ImageTextContrastive")
    assert run.status == "FINISHED"
    return Trained(run, store.folders(run)[0], root / "home", table)


def test_timm_backbone_checkpoint_loads_strictly_and_embeds_as_the_saved_model(trained: Trained) -> None:
    weights = trained.outputs / IMAGE_WEIGHTS
    state = torch.load(weights, weights_only=True)
    assert any(k.startswith("encoder.encoder.layer2.") for k in state)
    assert not any(k.startswith("encoder.encoder.layer3.") for k in state)  # the model stops at the chosen stage
    engine = get_image_inference("biovil", weights=weights, resize=32, center_crop_size=32)  # backbone from the record
    assert engine.model.backbone == "timm:resnet18" and engine.model.feature_stage == 2
    reference = ImageModel("timm:resnet18", 16, feature_stage=2)
    reference.load_state_dict(state, strict=True)
    reference.eval()
    image = sorted(trained.pairs.parent.glob("*.png"))[0]
    with torch.no_grad():
        batch = ChestXrayTransform(32, 32)(load_image(image))
        expected = F.normalize(reference(batch[None]).projected_global_embedding, dim=-1)[0]
    got = engine.get_projected_global_embedding(image)
    assert got.shape == (16,) and torch.equal(got, expected)
    patches, size = engine.get_projected_patch_embeddings(image)
    assert patches.shape == (4, 4, 16) and size == (40, 40)  # stride 8 at 32 pixels


def test_run_id_references_load_the_run_outputs(trained: Trained, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIML_HOME", str(trained.home))
    by_path = get_image_inference("biovil", weights=trained.outputs / IMAGE_WEIGHTS, resize=32, center_crop_size=32)
    by_run = get_image_inference(
        "biovil", weights=f"{trained.run.run_id}:{IMAGE_WEIGHTS}", resize=32, center_crop_size=32
    )
    image = sorted(trained.pairs.parent.glob("*.png"))[1]
    assert torch.equal(by_run.get_projected_global_embedding(image), by_path.get_projected_global_embedding(image))
    text = get_bert_inference("cxr_bert", model=trained.outputs / TEXT_FOLDER)
    embeddings = text.get_embeddings_from_prompt([REPORTS["left"], REPORTS["right"]])
    assert embeddings.shape == (2, 16) and torch.allclose(embeddings.norm(dim=1), torch.ones(2))
    with pytest.raises(HimlError, match="unknown run id"):
        get_image_inference("biovil", weights=f"0123456789abcdef0123456789abcdef:{IMAGE_WEIGHTS}")
    with pytest.raises(HimlError, match=r"run [0-9a-f]+ has no file '.*missing\.pt'"):
        get_image_inference("biovil", weights=f"{trained.run.run_id}:missing.pt")


def test_bad_backbones_are_one_line(tmp_path: Path) -> None:
    table = write_left_right_pairs(tmp_path / "pairs", 4, size=32)
    result = run_himl(
        "run", "--model", "ImageTextContrastive", "--pairs", str(table), "--image_backbone", "timm:no_such_model",
        cwd=tmp_path, env=_env(tmp_path),
    )  # fmt: skip
    lines = error_lines(result.stderr)
    assert result.returncode != 0 and len(lines) == 1, result.stderr[-2000:]
    assert "timm has no model 'no_such_model'" in lines[0]
    with pytest.raises(ValueError, match="is not known; expected one of resnet18"):
        ImageModel("vgg_by_name", 8)
    with pytest.raises(ValueError, match="no feature stage 9"):
        ImageModel("timm:resnet18", 8, feature_stage=9)
    with pytest.raises(ValueError, match="only for timm:NAME"):
        ImageModel("resnet18", 8, feature_stage=2)
    with pytest.raises(ValueError, match="needs a ResNet"):
        ImageModel("timm:resnet18", 8, multi_image=True)
