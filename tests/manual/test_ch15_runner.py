"""The manual's chapter 15 ("RUNNING ML EXPERIMENTS WITH HI-ML"): its local command line, and its container.

``himl-runner`` is installed with himl and is ``himl run``; ``health_ml.lightning_container`` is
``himl_kernel.lightning``. The chapter's ``--cluster`` commands are covered with the recorded AzureML
control plane in tests/azure_v2/test_run_cluster.py; its container pattern (fields set in ``__init__``,
a ``pytorch_lightning`` model, ``--model pkg.module.Class``) in tests/lightning/test_himl_style.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from himl_kernel.runstore import RunStore

from ..conftest import JOB_VARIABLES

RUNNER = str(Path(sys.executable).with_name("himl-runner"))


def test_15_himl_runner_model_hello_world_trains_here(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in JOB_VARIABLES}
    env["HIML_HOME"] = str(tmp_path / "home")
    env["HIML_CACHE"] = str(tmp_path / "cache")
    # the manual's command, as written: `himl-runner --model=HelloWorld`
    done = subprocess.run(
        [RUNNER, "--model=HelloWorld"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    store = RunStore(home=tmp_path / "home")
    (run,) = store.list_runs("HelloWorld")
    assert run.status == "FINISHED"
    # HelloWorld's 20 epochs fit y = 2x + 1 down to the noise (variance 0.01), and the test loss is recorded
    history = store.metric_history(run.run_id, "val/loss")
    assert len(history) == 20 and history[-1][1] < 0.02 < history[0][1]
    assert run.metrics["test/loss"] < 0.02
    outputs = store.folders(run)[0]
    assert (outputs / "checkpoints" / "last.ckpt").is_file() and (outputs / "config.yaml").is_file()
