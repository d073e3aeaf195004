"""The dataset layouts: CIFAR's pickles, TCGA-CRCk folders, tiles tables, image folders; and their bad inputs."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from himl_ssl.data import ImageDataset, detect_layout, find_images
from himl_ssl.module import warmup_cosine
from PIL import Image

from himl_kernel.errors import HimlError


def _png(path: Path, colour: tuple[int, int, int], size: int = 20) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), colour, dtype=np.uint8)).save(path)


def test_cifar10_in_torchvisions_folder_is_read_without_a_download(tmp_path: Path) -> None:
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        entry = {b"data": rng.integers(0, 255, (3, 3072), dtype=np.uint8), b"labels": [1, 2, 3]}
        (root / name).write_bytes(pickle.dumps(entry))
    assert detect_layout(tmp_path) == "CIFAR10"
    train = ImageDataset(find_images(tmp_path, "auto", "train"), 32)
    assert len(train) == 15
    image, label = train[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8 and label == 1
    first = pickle.loads((root / "data_batch_1").read_bytes())[b"data"][0]
    torch.testing.assert_close(image, torch.from_numpy(first.reshape(3, 32, 32)))
    (root / "test_batch").unlink()
    with pytest.raises(HimlError, match="has no test_batch"):
        find_images(tmp_path, "CIFAR10", "val")


def test_crck_tiles_take_their_slides_label(tmp_path: Path) -> None:
    _png(tmp_path / "CRC_DX_TRAIN" / "MSIMUT" / "a.png", (0, 0, 255))
    _png(tmp_path / "CRC_DX_TRAIN" / "MSS" / "b.png", (255, 0, 0))
    _png(tmp_path / "CRC_DX_TEST" / "MSS" / "c.png", (255, 0, 0))
    train = find_images(tmp_path, "auto", "train")
    assert sorted(train.labels) == [0, 1]
    assert find_images(tmp_path, "TCGA_CRCK", "val").labels == [0]


def test_a_tiles_table_splits_by_slide_and_checks_its_rows(tmp_path: Path) -> None:
    rows = []
    for slide in range(30):
        for tile in range(2):
            image = f"tiles/s{slide}_{tile}.png"
            _png(tmp_path / image, (slide, tile, 0), size=8)
            rows.append({"slide_id": f"slide{slide}", "tile_id": f"{slide}_{tile}", "image": image, "label": slide % 2})
    with (tmp_path / "dataset.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    train, val = find_images(tmp_path, "auto", "train"), find_images(tmp_path, "auto", "val")
    assert len(train.labels) + len(val.labels) == 60 and val.labels
    slides_of = {p: p.name.split("_")[0] for p in [*train.paths, *val.paths]}  # type: ignore[union-attr]
    assert not {slides_of[p] for p in train.paths} & {slides_of[p] for p in val.paths}  # type: ignore[union-attr]
    assert ImageDataset(train, 16)[0][0].shape == (3, 16, 16)

    (tmp_path / "dataset.csv").write_text("slide_id,image,label\ns,../outside.png,0\n")
    with pytest.raises(HimlError, match="outside the table's folder"):
        find_images(tmp_path, "TilesDataset", "train")
    (tmp_path / "dataset.csv").write_text("slide_id,image\ns,tiles/s0_0.png\n")
    with pytest.raises(HimlError, match="needs the columns label"):
        find_images(tmp_path, "TilesDataset", "train")


def test_an_image_folder_uses_its_class_folders_and_train_val(tmp_path: Path) -> None:
    for split in ("train", "val"):
        _png(tmp_path / split / "cats" / "1.png", (1, 1, 1))
        _png(tmp_path / split / "dogs" / "2.jpg", (2, 2, 2))
    assert sorted(find_images(tmp_path, "ImageFolder", "train").labels) == [0, 1]
    assert sorted(find_images(tmp_path, "ImageFolder", "val").labels) == [0, 1]
    with pytest.raises(HimlError, match="does not exist"):
        find_images(tmp_path / "missing", "auto", "train")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HimlError, match="holds no train images"):
        find_images(empty, "auto", "train")


def test_the_rate_warms_up_linearly_then_falls_on_a_cosine() -> None:
    assert warmup_cosine(0, 4, 20) == pytest.approx(1 / 5)
    assert warmup_cosine(3, 4, 20) == pytest.approx(4 / 5)
    assert warmup_cosine(4, 4, 20) == pytest.approx(1.0)
    assert warmup_cosine(12, 4, 20) == pytest.approx(0.5)
    assert warmup_cosine(20, 4, 20) == pytest.approx(0.0)


def test_the_ssl_rate_scales_with_the_processes_and_the_heads_does_not() -> None:
    from types import SimpleNamespace

    from himl_ssl.module import SSLModule

    module = SSLModule(
        "cifar_resnet18", "SimCLR", num_classes=2, image_size=32, learning_rate=1e-3, weight_decay=0.0,
        linear_head_learning_rate=1e-4, warmup_epochs=1, hidden_dim=8,
    )  # fmt: skip
    module._trainer = SimpleNamespace(world_size=4, estimated_stepping_batches=10, max_epochs=2)  # type: ignore[assignment]
    configured = module.configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    assert scheduler.base_lrs == pytest.approx([4e-3, 1e-4])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(4e-3 * warmup_cosine(0, 5, 10))
    head = {id(p) for p in module.linear_head.parameters()}
    assert {id(p) for p in optimizer.param_groups[1]["params"]} == head


def test_a_cifar_download_without_a_network_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from himl_ssl.data import download_cifar

    attempts: list[object] = []

    def no_network(*args: object, **kwargs: object) -> socket.socket:
        attempts.append(args[0] if args else None)
        raise OSError("network is blocked in this test")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: no_network(address))
    with pytest.raises(HimlError, match=r"cannot download CIFAR10 into .*put torchvision's cifar-10-batches-py folder"):
        download_cifar(tmp_path / "cifar", "CIFAR10")
    assert attempts  # it did try the network, and nothing half-downloaded is left to pass for the set
    assert not (tmp_path / "cifar" / "cifar-10-batches-py").exists()
    (tmp_path / "cifar" / "cifar-10-batches-py").mkdir()
    download_cifar(tmp_path / "cifar", "CIFAR10")  # already there: no network needed
    with pytest.raises(HimlError, match="only CIFAR10 and CIFAR100 can be downloaded"):
        download_cifar(tmp_path, "TCGA_CRCK")
