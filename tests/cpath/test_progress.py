"""Progress of long steps: counts, rate and time left, as lines off a terminal; a reused cache says so."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import torch
from himl_cpath.encoders import TileEncoder
from himl_cpath.feature_cache import cache_features
from himl_cpath.progress import Progress
from himl_cpath.slide_table import load_slides
from himl_cpath.tiling import TilingOptions
from torch import nn

from tests.conftest import run_himl
from tests.cpath.conftest import SlideFolder

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def test_lines_carry_a_timestamp_counts_rate_and_time_left() -> None:
    stream = io.StringIO()
    with Progress("work", 4, "slides", stream=stream, interval=0.0) as progress:
        progress.update()
        progress.note("slide a done")
        progress.update(3)
    lines = stream.getvalue().splitlines()
    assert re.fullmatch(rf"{STAMP} work: 0 of 4 slides", lines[0])
    assert re.fullmatch(rf"{STAMP} work: 1 of 4 slides, [0-9.e+]+ slides/s, \d+ s left", lines[1])
    assert lines[2] == "slide a done"
    assert re.fullmatch(rf"{STAMP} work: 4 of 4 slides, [0-9.e+]+ slides/s, took \d+ s", lines[3])


def test_lines_are_spaced_by_the_interval_but_the_last_always_shows() -> None:
    stream = io.StringIO()
    with Progress("work", 100, "tiles", stream=stream, interval=3600.0) as progress:
        for _ in range(100):
            progress.update()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "0 of 100" in lines[0] and "100 of 100" in lines[1]


def test_a_terminal_gets_a_bar() -> None:
    stream = io.StringIO()
    with Progress("work", 3, "slides", stream=stream, bar=True) as progress:
        progress.update(3)
    assert "3/3" in stream.getvalue() and not re.search(STAMP, stream.getvalue())


def test_the_tile_command_shows_progress_and_what_was_already_done(slide_folder: SlideFolder, tmp_path: Path) -> None:
    args = ("cpath", "tile", str(slide_folder.table), "--output", str(tmp_path / "out"), "--tile-size", "256")
    first = run_himl(*args, "--include", "slide_00,slide_01", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert re.search(rf"{STAMP} tiling: 2 of 2 slides, .* slides/s", first.stderr)
    second = run_himl(*args, "--include", "slide_00,slide_01,slide_02", cwd=tmp_path)
    assert "2 of 3 slides already tiled" in second.stderr
    assert re.search(rf"{STAMP} tiling: 1 of 1 slides", second.stderr)


class _Tiny(nn.Module):
    num_features = 3

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(2, 3))


def test_feature_encoding_shows_progress_and_a_reused_cache_says_so(
    slide_folder: SlideFolder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = load_slides(slide_folder.table, include=["slide_00", "slide_01", "slide_02"])
    encoder = TileEncoder("tiny", _Tiny(), "tiny-0", frozen=True)
    options = TilingOptions(tile_size=256, min_occupancy=0.8)
    _, encoded = cache_features(records, encoder, options, tmp_path / "cache", show_progress=True)
    err = capsys.readouterr().err
    assert encoded == 3 and "0 of 3 slides cached" in err
    assert re.search(rf"{STAMP} encoding features: 3 of 3 slides, .* slides/s", err)
    _, encoded = cache_features(records, encoder, options, tmp_path / "cache", show_progress=True)
    err = capsys.readouterr().err
    assert encoded == 0 and "3 of 3 slides cached" in err and "encoding features" not in err


def test_the_figures_command_lists_the_files_it_wrote(tmp_path: Path) -> None:
    from PIL import Image

    tile = tmp_path / "tile.png"
    Image.new("RGB", (16, 16), (200, 100, 100)).save(tile)
    lines = ["slide_id,label,prediction,prob_0,prob_1,tile_x,tile_y,attention,image"]
    for slide, label in (("s1", 1), ("s2", 0)):
        lines += [f"{slide},{label},{label},0.4,0.6,{16 * k},0,{0.2 * k},{tile}" for k in range(3)]
    table = tmp_path / "test_output.csv"
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_himl("cpath", "figures", str(table), "--tile-size", "16", "--top-k", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    wrote = [Path(line.removeprefix("wrote ")) for line in result.stdout.splitlines() if line.startswith("wrote ")]
    assert len(wrote) >= 9 and all(path.is_file() for path in wrote)
    assert {p.name for p in wrote} >= {"s1_top.png", "s1_bottom.png", "s2_top.png", "test_confusion_matrix.png"}
    assert f"{len(wrote)} figures of 2 slides" in result.stdout
    assert re.search(rf"{STAMP} attention figures: 2 of 2 slides", result.stderr)
