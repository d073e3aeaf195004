"""``himl cpath export-annotations``: tile attention as QuPath GeoJSON, checked against the table it came from."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

from himl_cpath.safe_names import file_stem

from tests.conftest import error_lines, run_himl

TILE = 224


def write_test_output(path: Path) -> list[dict[str, str]]:
    """A DeepMIL-like test_output.csv: two slides (one with a hostile id), level-0 corners, attention."""
    rows = []
    for slide, corners in (("slide_a", [(0, 0), (224, 0), (448, 672)]), ("../../b", [(896, 224), (1120, 224)])):
        for index, (x, y) in enumerate(corners):
            rows.append(
                {"slide_id": slide, "label": "1", "prediction": "1", "prob_0": "0.2", "prob_1": "0.8",
                 "tile_x": str(x), "tile_y": str(y), "attention": f"{0.1 + 0.3 * index:.2f}"}
            )  # fmt: skip
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def test_each_slide_becomes_a_feature_collection_of_its_tile_rectangles(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    table = tmp_path / "run" / "test_output.csv"
    rows = write_test_output(table)
    result = run_himl("cpath", "export-annotations", str(table), "--tile-size", str(TILE), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "run" / "annotations"
    wrote = [Path(line.removeprefix("wrote ")) for line in result.stdout.splitlines() if line.startswith("wrote ")]
    assert wrote == [out / "slide_a.geojson", out / f"{file_stem('../../b')}.geojson"]
    assert sorted(p.name for p in tmp_path.rglob("*.geojson")) == sorted(p.name for p in wrote)

    for slide, path in zip(("slide_a", "../../b"), wrote, strict=True):
        document = json.loads(path.read_text(encoding="utf-8"))
        assert document["type"] == "FeatureCollection"
        expected = {(int(r["tile_x"]), int(r["tile_y"])): float(r["attention"]) for r in rows if r["slide_id"] == slide}
        found = {}
        for feature in document["features"]:
            assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Polygon"
            assert feature["properties"]["objectType"] == "tile"
            (ring,) = feature["geometry"]["coordinates"]
            assert len(ring) == 5 and ring[0] == ring[-1]  # a closed ring
            xs, ys = {p[0] for p in ring}, {p[1] for p in ring}
            assert len(xs) == len(ys) == 2  # an axis-aligned rectangle
            x0, y0 = min(xs), min(ys)
            assert max(xs) - x0 == TILE and max(ys) - y0 == TILE
            area = sum(a[0] * b[1] - b[0] * a[1] for a, b in itertools.pairwise(ring)) / 2
            assert abs(area) == TILE * TILE
            found[(x0, y0)] = feature["properties"]["measurements"]["attention"]
        assert found == expected


def test_bad_tables_are_one_line(tmp_path: Path) -> None:
    table = tmp_path / "test_output.csv"
    write_test_output(table)
    no_size = run_himl("cpath", "export-annotations", str(table), cwd=tmp_path)
    assert no_size.returncode != 0 and len(error_lines(no_size.stderr)) == 1 and "--tile-size" in no_size.stderr
    a_file = tmp_path / "taken"
    a_file.write_text("x", encoding="utf-8")
    args = ("cpath", "export-annotations", str(table), "--tile-size", "224", "--output", str(a_file))
    taken = run_himl(*args, cwd=tmp_path)
    assert taken.returncode != 0 and len(error_lines(taken.stderr)) == 1 and "is a file" in taken.stderr
