"""``himl multimodal ground|zero-shot|embed`` through the kernel's own command line, in this process."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from himl_multimodal.cli import auroc

from himl_kernel.cli.main import main
from tests.multimodal.conftest import write_grey

SMALL = ["--image-model", "biovil", "--backbone", "resnet18", "--resize", "64", "--crop-size", "64"]


def _models(image_weights: Path, text_folder: Path) -> list[str]:
    return [*SMALL, "--image-weights", str(image_weights), "--text-model", str(text_folder)]


def _images(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    return [write_grey(folder / f"img{i}.png", rng.integers(0, 256, (64, 80))) for i in range(count)]


def test_ground_writes_figure_and_map(
    image_weights: Path, text_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = _images(tmp_path / "imgs", 1)[0]
    out = tmp_path / "out" / "map.png"
    code = main(
        ["multimodal", "ground", str(image), "left opacity", *_models(image_weights, text_folder), "--output", str(out)]
    )
    assert code == 0
    assert out.is_file() and out.stat().st_size > 1000
    similarity = np.load(out.with_suffix(".npy"))
    assert similarity.shape == (64, 80)
    assert np.isnan(similarity[:, :8]).all() and not np.isnan(similarity[:, 8:72]).any()
    assert "maximum" in capsys.readouterr().out


def test_zero_shot_csv_with_labels_reports_auroc(
    image_weights: Path, text_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = _images(tmp_path / "imgs", 4)
    table = tmp_path / "imgs" / "table.csv"
    table.write_text("image,label\n" + "".join(f"{p.name},{i % 2}\n" for i, p in enumerate(images)))
    out = tmp_path / "scores.csv"
    args = ["multimodal", "zero-shot", str(table), "--positive", "left opacity", "--negative", "right opacity"]
    assert main([*args, "--label-column", "label", "--output", str(out), *_models(image_weights, text_folder)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [Path(r["image"]).name for r in rows] == [p.name for p in images]
    for row in rows:
        assert float(row["score"]) == pytest.approx(
            float(row["similarity_positive"]) - float(row["similarity_negative"])
        )
        assert row["prediction"] == str(int(float(row["score"]) > 0))
    expected = auroc([float(r["score"]) for r in rows], [int(r["label"]) for r in rows])
    assert f"AUROC {expected:.3f}" in capsys.readouterr().out


def test_embed_images_folder_and_texts(image_weights: Path, text_folder: Path, tmp_path: Path) -> None:
    _images(tmp_path / "imgs", 3)
    out = tmp_path / "img.npz"
    assert (
        main(
            [
                "multimodal",
                "embed",
                "--images",
                str(tmp_path / "imgs"),
                "--output",
                str(out),
                *_models(image_weights, text_folder),
            ]
        )
        == 0
    )
    saved = np.load(out)
    assert saved["embeddings"].shape == (3, 16) and len(saved["names"]) == 3
    assert np.allclose(np.linalg.norm(saved["embeddings"], axis=1), 1.0, atol=1e-5)
    text_out = tmp_path / "text.csv"
    assert (
        main(
            [
                "multimodal",
                "embed",
                "--texts",
                "left opacity",
                "no effusion",
                "--text-model",
                str(text_folder),
                "--output",
                str(text_out),
            ]
        )
        == 0
    )
    rows = list(csv.reader(text_out.open()))
    assert rows[0][0] == "name" and len(rows) == 3 and len(rows[1]) == 17


def test_auroc_by_ranks() -> None:
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert auroc([1.0, 1.0], [0, 1]) == 0.5


def test_bad_command_inputs_are_one_line(
    image_weights: Path, text_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = _images(tmp_path / "imgs", 2)
    table = tmp_path / "imgs" / "t.csv"
    models = _models(image_weights, text_folder)
    zero = [
        "multimodal",
        "zero-shot",
        "--positive",
        "a",
        "--negative",
        "b",
        *models,
        "--output",
        str(tmp_path / "s.csv"),
    ]
    cases = {
        "does not exist": [
            "multimodal",
            "ground",
            str(tmp_path / "no.png"),
            "x",
            *models,
            "--output",
            str(tmp_path / "m.png"),
        ],
        "expected a file ending in": [
            "multimodal",
            "embed",
            "--texts",
            "a",
            "--text-model",
            str(text_folder),
            "--output",
            str(tmp_path / "e.txt"),
        ],
        "--text-model is needed": ["multimodal", "embed", "--texts", "a", "--output", str(tmp_path / "e.npz")],
        "no 'image' column": [*zero, str(table)],
        "label 'x' should be 0 or 1": [*zero, str(table), "--label-column", "label"],
        "is not an image": [*zero, str(tmp_path / "imgs" / "t2.csv")],
    }
    for expected, argv in cases.items():
        if "no 'image' column" in expected:
            table.write_text("path\nimg0.png\n")
        elif "should be 0 or 1" in expected:
            table.write_text(f"image,label\n{images[0].name},x\n")
        (tmp_path / "imgs" / "t2.csv").write_text("image\n../../etc/passwd\n")
        assert main(argv) != 0, expected
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("himl: error:")]
        assert len(lines) == 1 and expected in lines[0], err
