"""hi-ml's aggregate_hyperdrive_metrics on a HyperDrive run that azureml-core reads back from the v1 stand-in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from himl_azure_v1 import aggregate_hyperdrive_metrics
from himl_azure_v1.aggregate import child_run_index

from himl_kernel.errors import HimlError
from tests.azure_v1.control_plane_v1 import V1ControlPlane, hyperdrive_tags

CONFIG = {
    "generator_config": {"name": "GRID", "parameter_space": {"crossval_index": ["choice", [[0, 1]]]}},
    "primary_metric_config": {"name": "val/loss", "goal": "minimize"},
    "policy_config": {"name": "DEFAULT"},
    "platform_config": {},
    "max_total_jobs": 2,
    "max_concurrent_jobs": 2,
    "max_duration_minutes": 60,
}


def _metric(run: str, name: str, kind: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    columns = {column: "double" for column in rows[0]}
    values = [{"metricId": f"m{i}", "createdUtc": "2026-01-01T00:00:00Z", "data": row} for i, row in enumerate(rows)]
    return {"run": run, "name": name, "columns": columns, "value": values, "properties": {"uxMetricType": kind}}


@pytest.fixture
def hyperdrive_run(v1_plane: V1ControlPlane, v1_workspace_dir: Path) -> V1ControlPlane:
    v1_plane.experiments["exp"] = {"experimentId": "exp-1", "name": "exp", "tags": {}}
    v1_plane.run_json(
        "exp", "HD_1", status="Completed", experimentId="exp-1", runType="hyperdrive", tags=hyperdrive_tags(CONFIG)
    )
    # children listed in reverse, and one receiving its index as --crossval_index=1
    arguments = {"HD_1_1": ["--crossval_index=1"], "HD_1_0": ["--lr", "0.1", "--crossval_index", "0"]}
    for child, args in arguments.items():
        definition = {"arguments": args}
        v1_plane.run_json("exp", child, status="Completed", experimentId="exp-1", parentRunId="HD_1", rootRunId="HD_1",
                          runDefinition=definition)  # fmt: skip
        index = int(child[-1])
        loss = [{"val/loss": 0.5 - index / 10}, {"val/loss": 0.3 - index / 10}]
        v1_plane.metrics.append(_metric(child, "val/loss", "azureml.v1.scalar", loss))
        v1_plane.metrics.append(_metric(child, "epochs", "azureml.v1.scalar", [{"epochs": 2}]))
        table = [{"epoch": 1, "accuracy": 0.7 + index / 10}, {"epoch": 2, "accuracy": 0.8 + index / 10}]
        v1_plane.metrics.append(_metric(child, "accuracy_table", "azureml.v1.table", table))
    return v1_plane


def test_each_child_run_is_a_column_and_each_metric_a_row(hyperdrive_run: V1ControlPlane) -> None:
    frame = aggregate_hyperdrive_metrics("crossval_index", run_id="HD_1")
    assert list(frame.columns) == [0, 1]
    assert frame.loc["val/loss", 0] == [0.5, 0.3] and frame.loc["val/loss", 1] == pytest.approx([0.4, 0.2])
    assert frame.loc["epochs", 1] == 2
    assert frame.loc["accuracy_table", 1] == {"epoch": [1, 2], "accuracy": pytest.approx([0.8, 0.9])}
    kept = aggregate_hyperdrive_metrics("crossval_index", run_id="HD_1", keep_metrics=["epochs"])
    assert list(kept.index) == ["epochs"]


def test_a_plain_run_or_a_missing_argument_is_one_line(hyperdrive_run: V1ControlPlane) -> None:
    with pytest.raises(HimlError, match="did not receive --seed"):
        aggregate_hyperdrive_metrics("seed", run_id="HD_1")
    with pytest.raises(HimlError, match="is not a HyperDrive run"):
        aggregate_hyperdrive_metrics("crossval_index", run_id="HD_1_0")
    with pytest.raises(HimlError, match="needs a run or a run_id"):
        aggregate_hyperdrive_metrics("crossval_index")


def test_the_child_index_is_read_from_both_argument_spellings() -> None:
    assert child_run_index({"runDefinition": {"arguments": ["--i", "3"]}}, "i") == "3"
    assert child_run_index({"runDefinition": {"arguments": ["--i=4", "--j", "5"]}}, "i") == "4"
    assert child_run_index({"runDefinition": {"arguments": ["--i"]}}, "i") is None
    assert child_run_index({}, "i") is None
