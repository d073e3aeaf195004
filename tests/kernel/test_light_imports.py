"""Discovery, ``himl plugins`` and ``himl --help`` import nothing heavy.

The check runs in a fresh interpreter: this test process has long since
imported whatever other tests needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

#: Top-level packages that only the commands using them may import.
HEAVY = (
    "torch",
    "lightning",
    "pytorch_lightning",
    "mlflow",
    "azure",
    "azureml",
    "sqlalchemy",
    "pandas",
    "monai",
    "transformers",
    "timm",
)

PROBE = textwrap.dedent(
    """
    import io, json, sys
    from contextlib import redirect_stdout

    import himl_kernel
    from himl_kernel.plugins import build_host

    host = build_host()
    sizes = {
        attr: len(list(getattr(host, attr)))
        for attr in (
            "compute_backends", "dataset_providers", "checkpoint_sources",
            "containers", "loggers", "commands",
        )
    }
    after_discovery = sorted(sys.modules)

    from himl_kernel.cli.main import main

    out = io.StringIO()
    with redirect_stdout(out):
        codes = [main(["plugins"])]
        try:
            main(["--help"])
        except SystemExit as exc:
            codes.append(exc.code)
    print(json.dumps({
        "sizes": sizes,
        "codes": codes,
        "output": out.getvalue(),
        "after_discovery": after_discovery,
        "after_cli": sorted(sys.modules),
    }))
    """
)


def heavy_modules(modules: list[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


def test_discovery_and_cli_listing_import_no_heavy_library(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "HIML_DISABLE_PLUGINS")}
    env["HIML_HOME"] = str(tmp_path / "store")
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)

    # The probe did real work: the built-ins were found and both commands ran.
    assert report["sizes"]["containers"] >= 1
    assert report["sizes"]["compute_backends"] >= 1
    assert report["codes"] == [0, 0]
    assert "HelloWorld" in report["output"]
    assert "usage: himl" in report["output"]
    by_discovery = heavy_modules(report["after_discovery"])
    assert by_discovery == [], f"build_host() and the registries imported: {', '.join(by_discovery)}"
    by_cli = heavy_modules(report["after_cli"])
    assert by_cli == [], f"`himl plugins` or `himl --help` imported: {', '.join(by_cli)}"
    assert not (tmp_path / "store").exists(), "listing must not create a run store"
