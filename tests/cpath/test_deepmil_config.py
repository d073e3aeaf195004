"""A small DeepMIL run's outputs/config.yaml, given back to ``himl run --config``, reproduces the run exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from himl_kernel.runstore import RunStore

from ..conftest import run_himl
from .conftest import SlideFolder


def _newest_outputs(home: Path) -> Path:
    runs = RunStore(home=home)
    return runs.folders(runs.list_runs("DeepMIL", max_results=1)[0])[0]


@pytest.mark.slow
def test_the_config_yaml_of_a_deepmil_run_reproduces_it(slide_folder: SlideFolder, tmp_path: Path) -> None:
    table = tmp_path / "dataset.csv"
    lines = ["image,slide_id,label"] + [f"{s.path},{s.path.stem},{s.label}" for s in slide_folder.slides[:8]]
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {"HIML_HOME": str(tmp_path / "home"), "HIML_CACHE": str(tmp_path / "cache")}
    first = run_himl(
        "run", "--model", "DeepMIL", "--slides_csv", str(table), "--max_epochs", "1", "--batch_size", "2",
        "--max_bag_size", "4", "--max_bag_size_inference", "4", "--pl_num_sanity_val_steps", "0",
        "--figures", "false", "--tile_size", "112", "--val_fraction", "0.25", "--test_fraction", "0.25",
        "--class_weights", "1,2", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    outputs = _newest_outputs(tmp_path / "home")
    config = outputs / "config.yaml"
    text = config.read_text(encoding="utf-8")
    assert f"slides_csv: {table}\n" in text and "class_weights:\n- 1.0\n- 2.0\n" in text and "tile_size: 112\n" in text
    second = run_himl("run", "--model", "DeepMIL", "--config", str(config), cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    again = _newest_outputs(tmp_path / "home")
    assert again != outputs
    assert (again / "config.yaml").read_text(encoding="utf-8") == text
    for name in ("test_output.csv", "test_confusion_matrix.csv"):
        assert (again / name).read_text(encoding="utf-8") == (outputs / name).read_text(encoding="utf-8"), name
