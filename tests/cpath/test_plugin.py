"""The cpath plugin is found through its entry point and stays light until a command runs."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import himl_cpath.plugin
from himl_cpath.synthetic import SyntheticSlide

from himl_kernel.doctor import DoctorReport
from himl_kernel.testing import fresh_host
from tests.conftest import run_himl

HEAVY = (
    "numpy",
    "openslide",
    "tifffile",
    "PIL",
    "girder_client",
    "torch",
    "imagecodecs",
    "monai",
    "cucim",
    "timm",
    "torchmetrics",
    "lightning",
)

PROBE = textwrap.dedent(
    """
    import io, json, sys
    from contextlib import redirect_stdout
    from himl_kernel.plugins import build_host
    host = build_host()
    names = host.commands.names()
    models = host.containers.names()
    after_discovery = sorted(sys.modules)
    from himl_kernel.cli.main import main
    with redirect_stdout(io.StringIO()) as out:
        try:
            main(["cpath", "--help"])
        except SystemExit:
            pass
    print(json.dumps({"commands": names, "models": models, "help": out.getvalue(),
                      "after_discovery": after_discovery, "after_help": sorted(sys.modules)}))
    """
)


def heavy(modules: list[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


def test_entry_point_registers_cpath_and_imports_nothing_heavy(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("HIML_DISABLE_PLUGINS", "HIML_PLUGIN_AUTOLOAD")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert "cpath" in report["commands"]
    assert "DeepMIL" in report["models"]
    for name in ("tile", "montage", "dsa-upload", "export-annotations", "info"):
        assert name in report["help"]
    assert heavy(report["after_discovery"]) == []
    assert heavy(report["after_help"]) == []


def test_plugin_listing_and_doctor(tmp_path: Path) -> None:
    host = fresh_host(himl_cpath.plugin)
    assert host.plugin("himl_cpath.plugin") is not None and host.plugin("himl_cpath.plugin").status == "ok"
    assert host.commands.entry("cpath").description.startswith("pathology slides")
    report = DoctorReport()
    himl_cpath.plugin.himl_doctor(report)
    rows = {row.topic: row.status for row in report.rows}
    # one row per requirement of himl-cpath's metadata, named by distribution
    assert rows["cpath: openslide-python"] == "ok" and rows["cpath: tifffile"] == "ok" and rows["cpath: timm"] == "ok"
    cucim_rows = [rows[topic] for topic in rows if topic.startswith("cpath: cucim")]
    cucim_installed = importlib.util.find_spec("cucim") is not None
    assert cucim_rows == ["ok" if cucim_installed else "missing"]
    listed = run_himl("plugins", cwd=tmp_path)
    assert listed.returncode == 0 and "himl-cpath" in listed.stdout and "commands: cpath" in listed.stdout


def test_info_prints_levels_and_resolution(small_slide: SyntheticSlide, tmp_path: Path) -> None:
    result = run_himl("cpath", "info", str(small_slide.path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "backend:    openslide" in result.stdout
    assert "mpp:        0.5000 x 0.5000" in result.stdout and "objective:  20x" in result.stdout
    assert "level 1:    600 x 450  (downsample 4.000)" in result.stdout
