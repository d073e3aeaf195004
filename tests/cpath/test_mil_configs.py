"""The named DeepMIL configurations (TCGA-CRCk and PANDA) on small synthetic copies of the two datasets.

Nothing is downloaded: the ImageNet configurations get a local resnet18
state dict through ``--encoder_weights``, the SSL ones a Lightning-style
checkpoint, and the model hub is asked only to show that, offline, it fails
in one line.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from himl_cpath.conventions import crck_bags
from himl_cpath.deepmil_data import class_indices, split_slides
from himl_cpath.mil_configs import (
    PandaImageNetMIL,
    PandaSSLMIL,
    PandaTransformerMIL,
    TcgaCrckImageNetMIL,
    TcgaCrckSSLMIL,
    TcgaCrckTransformerMIL,
)
from himl_cpath.plugin import MIL_CONFIGS
from himl_cpath.synthetic import write_synthetic_slide
from PIL import Image

from himl_kernel.errors import HimlError
from himl_kernel.runstore import RunStore, StoredRun

from ..conftest import error_lines, run_himl

TILE = 64
CRCK_TRAIN, CRCK_TEST = 16, 4  # slides per split, half of them MSIMUT
TILES_PER_SLIDE = 4
#: Settings that keep a run short: no sanity validation, few tiles, small batches.
QUICK = ("--pl_num_sanity_val_steps", "0", "--max_bag_size", "3", "--batch_size", "4")


@dataclass(frozen=True)
class Crck:
    """The folder, the label ("1": MSIMUT, "0": MSS) of each slide, and which slides are in CRC_DX_TEST."""

    folder: Path
    labels: dict[str, str]
    test_slides: set[str]


def tcga_barcode(index: int) -> str:
    """A distinct TCGA slide barcode per index (``TCGA-XX-XXXX-01Z-00-DX1``)."""
    return f"TCGA-{'AB'[index % 2]}{index % 10}-{index:04d}-01Z-00-DX1"


def crck_tile(positive: bool, rng: np.random.Generator) -> Image.Image:
    """Pink noise; an MSIMUT tile also carries a dark blue square."""
    pixels = np.clip(rng.normal((214, 150, 190), 18, size=(TILE, TILE, 3)), 0, 255).astype(np.uint8)
    if positive:
        x, y = rng.integers(0, TILE // 2, size=2)
        pixels[y : y + TILE // 2, x : x + TILE // 2] = (40, 40, 120)
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def crck(tmp_path_factory: pytest.TempPathFactory) -> Crck:
    """A TCGA-CRCk folder: CRC_DX_TRAIN and CRC_DX_TEST, each with MSIMUT and MSS tiles named by slide barcode."""
    folder = tmp_path_factory.mktemp("crck")
    rng = np.random.default_rng(0)
    labels: dict[str, str] = {}
    test_slides: set[str] = set()
    index = 0
    for split, count in (("CRC_DX_TRAIN", CRCK_TRAIN), ("CRC_DX_TEST", CRCK_TEST)):
        for number in range(count):
            class_name = "MSIMUT" if number % 2 else "MSS"
            barcode = tcga_barcode(index)
            index += 1
            (folder / split / class_name).mkdir(parents=True, exist_ok=True)
            for tile in range(TILES_PER_SLIDE):
                name = f"blk-{'ABCDEFGHIJKL'[tile]}{index:011d}-{barcode}.png"
                crck_tile(class_name == "MSIMUT", rng).save(folder / split / class_name / name)
            labels[barcode] = "1" if class_name == "MSIMUT" else "0"
            if split == "CRC_DX_TEST":
                test_slides.add(barcode)
    return Crck(folder, labels, test_slides)


def resnet18_backbone() -> torch.nn.Module:
    import timm

    torch.manual_seed(5)
    return timm.create_model("resnet18", pretrained=False, num_classes=0)


@pytest.fixture(scope="module")
def imagenet_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A resnet18 state dict as timm writes it (our stand-in for the hub's ImageNet weights)."""
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(resnet18_backbone().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def ssl_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-supervised Lightning checkpoint: the encoder under ``encoder.``, next to a projection head."""
    state = {f"encoder.{key}": value for key, value in resnet18_backbone().state_dict().items()}
    state["projection.0.weight"] = torch.zeros(128, 512)
    state["projection.0.bias"] = torch.zeros(128)
    path = tmp_path_factory.mktemp("ssl") / "simclr.ckpt"
    torch.save({"state_dict": state, "epoch": 9, "global_step": 100}, path)
    return path


def env_of(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"HIML_HOME": str(tmp_path / "home"), "HIML_CACHE": str(tmp_path / "cache"), **extra}


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def only_run(home: Path, experiment: str) -> tuple[RunStore, StoredRun]:
    store = RunStore(home=home)
    runs = [r for r in store.list_runs(experiment) if not r.parent_run_id]
    assert len(runs) == 1, runs
    return store, runs[0]


def by_slide(rows: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    slides: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        slides.setdefault(row["slide_id"], []).append(row)
    return slides


# -- TCGA-CRCk ------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_crck_imagenet_crossvalidation_tests_the_dataset_test_slides_in_each_fold(
    crck: Crck, imagenet_weights: Path, tmp_path: Path
) -> None:
    result = run_himl(
        "run", "--model", "TcgaCrckImageNetMIL", "--local_datasets", str(crck.folder),
        "--encoder_weights", str(imagenet_weights), "--crossval_count", "2", "--max_epochs", "2", *QUICK,
        cwd=tmp_path, env=env_of(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    store, parent = only_run(tmp_path / "home", "TcgaCrckImageNetMIL")
    assert parent.status == "FINISHED"
    children = store.children(parent.run_id)
    assert sorted(c.params["crossval_index"] for c in children) == ["0", "1"]
    assert all(c.status == "FINISHED" for c in children), [c.status for c in children]
    assert all("val/auroc" in c.metrics and "test/auroc" in c.metrics for c in children)
    # the tiles were encoded once, by the first fold; the second read them from the cache
    assert len(re.findall(rf"encoded {CRCK_TRAIN + CRCK_TEST} of {CRCK_TRAIN + CRCK_TEST} slides", result.stdout)) == 1
    assert f"encoded 0 of {CRCK_TRAIN + CRCK_TEST} slides" in result.stdout

    bags = {bag.slide_id: bag for bag in crck_bags(crck.folder)[0]}
    for child in children:
        outputs = store.folders(child)[0]
        rows = read_rows(outputs / "test_output.csv")
        slides = by_slide(rows)
        assert set(slides) == crck.test_slides  # CRC_DX_TEST is the test split, in every fold
        for slide_id, tiles in slides.items():
            # inference sees every tile; "image" names its file (what dsa-upload and the figures read)
            assert sorted(int(t["tile_index"]) for t in tiles) == list(range(TILES_PER_SLIDE))
            for t in tiles:
                image = Path(t.get("image") or "")
                assert image == bags[slide_id].paths()[int(t["tile_index"])] and image.is_file(), t
                assert image.parent.parent.name == "CRC_DX_TEST" and slide_id in image.name
            assert {t["label"] for t in tiles} == {crck.labels[slide_id]}
            assert sum(float(t["attention"]) for t in tiles) == pytest.approx(1.0, abs=1e-5)
            assert all(t["tile_x"] == "-1" == t["tile_y"] and t["right"] == "" for t in tiles)
            for kind in ("top", "bottom"):
                assert (outputs / "attention" / f"{slide_id}_{kind}.png").is_file(), (slide_id, kind)
            assert not (outputs / "attention" / f"{slide_id}_heatmap.png").exists()  # tiles without a slide
        matrix = read_rows(outputs / "test_confusion_matrix.csv")
        assert sum(int(v) for row in matrix for k, v in row.items() if k != "true\\predicted") == CRCK_TEST


def test_crck_ssl_without_a_checkpoint_fails_in_one_line_before_any_run(crck: Crck, tmp_path: Path) -> None:
    result = run_himl(
        "run", "--model", "TcgaCrckSSLMIL", "--local_datasets", f"[{crck.folder}]", "--max_epochs", "1",
        cwd=tmp_path, env=env_of(tmp_path),
    )  # fmt: skip
    assert result.returncode != 0
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and "TcgaCrckSSLMIL needs --encoder_weights" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "home").exists()  # refused before any run started


@pytest.mark.slow
def test_crck_ssl_reads_the_encoder_of_a_lightning_checkpoint(
    crck: Crck, imagenet_weights: Path, ssl_checkpoint: Path, tmp_path: Path
) -> None:
    from himl_cpath.datasets import read_tile_files
    from himl_cpath.encoders import create_encoder
    from himl_cpath.feature_cache import cache_folder, load_features

    result = run_himl(
        "run", "--model", "TcgaCrckSSLMIL", "--local_datasets", f"[{crck.folder}]",
        "--encoder_weights", str(ssl_checkpoint), "--max_epochs", "1", *QUICK,
        cwd=tmp_path, env=env_of(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    store, run = only_run(tmp_path / "home", "TcgaCrckSSLMIL")
    assert run.status == "FINISHED" and run.params["encoder_weights"] == str(ssl_checkpoint)
    rows = read_rows(store.folders(run)[0] / "test_output.csv")
    assert set(by_slide(rows)) == crck.test_slides
    # the features cached under the checkpoint are those of the backbone it holds under "encoder."
    ssl_encoder = create_encoder("resnet18", weights=ssl_checkpoint)
    folder = cache_folder(tmp_path / "cache" / "cpath_features", ssl_encoder, None)
    bags = {bag.slide_id: bag for bag in crck_bags(crck.folder)[0]}
    slide_id = sorted(crck.test_slides)[0]
    cached = load_features(folder, slide_id).features
    expected = create_encoder("resnet18", weights=imagenet_weights)(
        torch.from_numpy(read_tile_files(bags[slide_id], range(TILES_PER_SLIDE)))
    )
    torch.testing.assert_close(cached, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_the_hub_weights_offline_fail_in_one_line(crck: Crck, tmp_path: Path) -> None:
    """The ImageNet configurations ask the model hub by default; offline that is one error line, no traceback."""
    env = env_of(tmp_path, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), TORCH_HOME=str(tmp_path / "torch"))
    result = run_himl(
        "run", "--model", "TcgaCrckImageNetMIL", "--local_datasets", f"[{crck.folder}]", "--max_epochs", "1",
        *QUICK, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert result.returncode != 0
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert "model hub" in errors[0] and "--encoder_weights" in errors[0], errors[0]
    assert "Traceback" not in result.stderr, result.stderr
    store, run = only_run(tmp_path / "home", "TcgaCrckImageNetMIL")
    assert run.status == "FAILED"
    assert "model hub" in (store.folders(run)[1] / "error.txt").read_text(encoding="utf-8")

    # with no data at all, that is what the one line says: the slides are looked for before the encoder is made
    bare = run_himl("run", "--model", "TcgaCrckImageNetMIL", cwd=tmp_path, env=env)
    errors = error_lines(bare.stderr)
    assert bare.returncode != 0 and len(errors) == 1, bare.stderr
    assert "needs --slides_csv, or a dataset (--local_datasets)" in errors[0] and "hub" not in errors[0], errors[0]


# -- PANDA ----------------------------------------------------------------------------------------------------------

PANDA_GRADES = 6
PANDA_PER_GRADE = 3
PANDA_SIZE = (1600, 1200)
PANDA_TILE = 64


@pytest.fixture(scope="module")
def panda(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PANDA folder: train.csv and 18 small pyramidal slides, three of each ISUP grade (no masks)."""
    folder = tmp_path_factory.mktemp("PANDA")
    (folder / "train_images").mkdir()
    lines = ["image_id,data_provider,isup_grade,gleason_score"]
    gleason = ["0+0", "3+3", "3+4", "4+3", "4+4", "4+5"]
    for index in range(PANDA_GRADES * PANDA_PER_GRADE):
        grade = index % PANDA_GRADES
        image_id = f"{index:04d}{'f' * 28}"
        slide = write_synthetic_slide(
            folder / "train_images" / f"{image_id}.tiff", *PANDA_SIZE, seed=60 + index, positive=grade > 0
        )
        assert slide.downsamples[:2] == (1, 4)  # level 1 is 4x down, as in PANDA
        lines.append(f"{image_id},radboud,{grade},{gleason[grade]}")
    (folder / "train.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.mark.slow
def test_panda_imagenet_grades_six_classes_from_level_one_tiles(
    panda: Path, imagenet_weights: Path, tmp_path: Path
) -> None:
    result = run_himl(
        "run", "--model", "PandaImageNetMIL", "--local_datasets", str(panda),
        "--encoder_weights", str(imagenet_weights), "--val_fraction", "0.34", "--test_fraction", "0.34",
        "--tile_size", str(PANDA_TILE), "--max_epochs", "1", *QUICK,
        cwd=tmp_path, env=env_of(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test/qwk=" in result.stdout
    store, run = only_run(tmp_path / "home", "PandaImageNetMIL")
    assert run.status == "FINISHED" and "val/qwk" in run.metrics
    outputs = store.folders(run)[0]
    rows = read_rows(outputs / "test_output.csv")
    slides = by_slide(rows)
    assert len(slides) == PANDA_GRADES  # one test slide per grade: round(3 * 0.34)
    assert sorted(tiles[0]["label"] for tiles in slides.values()) == [str(g) for g in range(PANDA_GRADES)]
    assert {f"prob_{c}" for c in range(PANDA_GRADES)} <= set(rows[0]) and "prob_6" not in rows[0]
    for slide_id, tiles in slides.items():
        probabilities = [float(tiles[0][f"prob_{c}"]) for c in range(PANDA_GRADES)]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
        assert int(tiles[0]["prediction"]) == max(range(PANDA_GRADES), key=lambda c: probabilities[c])
        assert sum(float(t["attention"]) for t in tiles) == pytest.approx(1.0, abs=1e-5)
        # tiles cut at level 1 of a 4x pyramid cover 4 * 64 level-0 pixels, on the level-1 grid
        for t in tiles:
            x, y = int(t["tile_x"]), int(t["tile_y"])
            assert int(t["right"]) - x == PANDA_TILE * 4 == int(t["bottom"]) - y, t
            assert x % (PANDA_TILE * 4) == 0 == y % (PANDA_TILE * 4) and x + 256 <= PANDA_SIZE[0] + 256
        for kind in ("top", "bottom", "heatmap"):
            assert (outputs / "attention" / f"{slide_id}_{kind}.png").is_file(), (slide_id, kind)
    matrix = read_rows(outputs / "test_confusion_matrix.csv")
    assert len(matrix) == PANDA_GRADES and all(len(row) == PANDA_GRADES + 1 for row in matrix)
    assert sum(int(v) for row in matrix for k, v in row.items() if k != "true\\predicted") == len(slides)
    assert all(sum(int(v) for k, v in row.items() if k != "true\\predicted") == 1 for row in matrix)
    for name in ("test_roc_curve.png", "test_pr_curve.png", "test_confusion_matrix.png"):
        assert (outputs / name).is_file(), name


# -- the registry and the defaults ------------------------------------------------------------------------------------


def test_himl_models_lists_the_six_configurations(tmp_path: Path) -> None:
    result = run_himl("models", cwd=tmp_path, env=env_of(tmp_path))
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert set(MIL_CONFIGS) <= set(listed) and len(MIL_CONFIGS) == 6
    for name, description in MIL_CONFIGS.items():
        assert description in listed[name] and "[cpath]" in listed[name]


def test_the_defaults_of_each_configuration(crck: Crck) -> None:
    from himl_kernel.fields import build_parser

    for cls in (TcgaCrckImageNetMIL, TcgaCrckTransformerMIL):
        config = cls()
        assert (config.num_classes, config.encoder, config.encoder_weights) == (2, "resnet18", "hub")
        assert (config.tile_level, config.best_checkpoint_metric) == (0, "val/auroc")
    for cls in (PandaImageNetMIL, PandaTransformerMIL):
        config = cls()
        assert (config.num_classes, config.encoder, config.encoder_weights) == (6, "resnet18", "hub")
        assert (config.tile_level, config.min_occupancy, config.best_checkpoint_metric) == (1, 0.25, "val/qwk")
    assert TcgaCrckImageNetMIL().pooling == PandaImageNetMIL().pooling == "attention"
    assert TcgaCrckTransformerMIL().pooling == PandaTransformerMIL().pooling == "transformer_attention"
    assert TcgaCrckTransformerMIL().l_rate == PandaTransformerMIL().l_rate == 1e-4
    assert PandaSSLMIL(encoder_weights="ssl.ckpt").num_classes == 6
    assert TcgaCrckSSLMIL(encoder_weights="ssl.ckpt").pooling == "attention"
    for cls in (TcgaCrckSSLMIL, PandaSSLMIL):  # the hub is no self-supervised checkpoint
        for weights in (None, "", "  ", "hub"):
            with pytest.raises(HimlError, match=f"{cls.__name__} needs --encoder_weights"):
                cls(encoder_weights=weights)
    # what `himl run --model TcgaCrckTransformerMIL --help` prints for the pooling
    text = " ".join(build_parser(TcgaCrckTransformerMIL, "himl run").format_help().split())
    assert "how tiles are pooled into a slide embedding (default: transformer_attention)" in text
    assert "--pooling {attention,gated_attention,mean,max,transformer,transformer_attention} how tiles" in text


def test_crck_crossvalidation_folds_validate_on_disjoint_slides(crck: Crck) -> None:
    """The folds' validation sets (not visible in a run's outputs) split CRC_DX_TRAIN; the test is CRC_DX_TEST."""
    val_sets, test_sets = [], []
    for index in range(2):
        config = TcgaCrckImageNetMIL(crossval_count=2, crossval_index=index)
        config._input_folders = [crck.folder]
        records, fixed = config.bag_sources()
        splits = split_slides(
            class_indices(records, config.num_classes), val_fraction=config.val_fraction,
            test_fraction=config.test_fraction, seed=config.split_seed, fixed=fixed,
            crossval_count=config.crossval_count, crossval_index=config.crossval_index,
        )  # fmt: skip
        val_sets.append({s.record.slide_id for s in splits.val})
        test_sets.append({s.record.slide_id for s in splits.test})
        train = {s.record.slide_id for s in splits.train}
        assert not train & val_sets[-1] and (train | val_sets[-1]) == set(crck.labels) - crck.test_slides
    assert test_sets[0] == test_sets[1] == crck.test_slides
    assert not val_sets[0] & val_sets[1] and len(val_sets[0]) == len(val_sets[1]) == CRCK_TRAIN // 2
    assert all({crck.labels[s] for s in val} == {"0", "1"} for val in val_sets)  # each fold keeps both classes


def test_the_ssl_configurations_build_the_architecture_an_ssl_export_describes(tmp_path: Path) -> None:
    """An exported CIFAR-stem resnet18 (himl-ssl's files, written here by hand) is built as such, not as --encoder."""
    import json

    import timm
    from safetensors.torch import save_file

    network = timm.create_model("resnet18", pretrained=False, num_classes=0)
    network.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    network.maxpool = torch.nn.Identity()
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(tmp_path / "encoder.safetensors"))
    (tmp_path / "encoder.json").write_text(
        json.dumps(
            {
                "format": "himl-ssl-encoder/1", "architecture": "cifar_resnet18", "timm_name": "resnet18",
                "cifar_stem": True, "feature_size": 512, "input_size": 32,
                "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "method": "BYOL",
            }
        )
    )  # fmt: skip
    for cls in (TcgaCrckSSLMIL, PandaSSLMIL):
        config = cls(encoder_weights=str(tmp_path / "encoder.safetensors"))
        encoder = config.create_encoder()
        assert encoder.name == "cifar_resnet18" and encoder.frozen
        assert tuple(encoder.backbone.conv1.weight.shape) == (64, 3, 3, 3)
        torch.testing.assert_close(encoder.backbone.conv1.weight, network.conv1.weight)
    (tmp_path / "encoder.json").unlink()  # without its description, the file is read as a resnet18 checkpoint
    with pytest.raises(HimlError, match="do not fit resnet18"):
        TcgaCrckSSLMIL(encoder_weights=str(tmp_path / "encoder.safetensors")).create_encoder()
