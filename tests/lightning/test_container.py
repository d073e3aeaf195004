"""LightningContainer's fields and decisions, without training: sweeps, seeds, schedules, datasets, registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from himl_kernel.errors import HimlError
from himl_kernel.lightning.hello import HelloWorld
from himl_kernel.lightning.optim import schedule_factor
from himl_kernel.lightning.regression import compare_with_folder
from himl_kernel.lightning.runner import ENV_RESOLVED_CHECKPOINT, resolve_source_checkpoint
from himl_kernel.registry import Registry


def test_crossvalidation_and_different_seeds_expand_into_child_runs() -> None:
    crossval = HelloWorld(crossval_count=3).get_sweep()
    assert crossval is not None and crossval.trials() == [{"crossval_index": i} for i in range(3)]
    seeds = HelloWorld(different_seeds=2, random_seed=7).get_sweep()
    assert seeds is not None and seeds.trials() == [{"random_seed": 0}, {"random_seed": 1}]  # hi-ml's seeds
    both = HelloWorld(crossval_count=2, different_seeds=2).get_sweep()
    assert both is not None and len(both.trials()) == 4
    assert HelloWorld().get_sweep() is None
    assert HelloWorld(crossval_count=3, crossval_index=1).get_sweep() is None  # a child does not expand again


def test_a_crossvalidation_child_derives_its_seed_from_the_fold() -> None:
    assert HelloWorld(random_seed=10).effective_random_seed == 10
    assert [HelloWorld(random_seed=10, crossval_count=3, crossval_index=i).effective_random_seed for i in range(3)] == [
        10,
        11,
        12,
    ]


def test_schedules_follow_hi_ml_choices() -> None:
    def rates(**fields: object) -> list[float]:
        factor = schedule_factor(HelloWorld(l_rate=1.0, max_epochs=10, **fields), 10)  # type: ignore[arg-type]
        return [round(factor(epoch), 6) for epoch in range(10)]

    assert rates(l_rate_scheduler="none") == [1.0] * 10
    assert rates(l_rate_scheduler="step", l_rate_step_step_size=4, l_rate_step_gamma=0.5)[3:5] == [1.0, 0.5]
    assert rates(l_rate_scheduler="multistep", l_rate_multi_step_milestones=[2, 5])[:6] == [1, 1, 0.1, 0.1, 0.1, 0.01]
    assert rates(l_rate_scheduler="exponential", l_rate_exponential_gamma=0.5)[:3] == [1.0, 0.5, 0.25]
    cosine = rates(l_rate_scheduler="cosine", min_l_rate=0.1)
    assert cosine[0] == 1.0 and cosine[-1] >= 0.1 and cosine == sorted(cosine, reverse=True)
    warm = rates(l_rate_scheduler="none", l_rate_warmup="linear", l_rate_warmup_epochs=3)
    assert warm[:4] == [0.25, 0.5, 0.75, 1.0]


def test_the_container_optimizer_fields_build_the_optimizer() -> None:
    model = torch.nn.Linear(1, 1)
    built = HelloWorld(optimizer_type="SGD", l_rate=0.2, momentum=0.5).create_optimizers(model.parameters())
    optimizer = built["optimizer"]
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.param_groups[0]["lr"] == 0.2 and optimizer.param_groups[0]["momentum"] == 0.5
    assert built["lr_scheduler"]["interval"] == "epoch"


def test_datasets_pair_names_folders_and_mountpoints(tmp_path: Path) -> None:
    configs = HelloWorld(
        azure_datasets=["a", "b"], local_datasets=[tmp_path, tmp_path], datastore="store"
    ).get_input_datasets()
    assert [(c.name, c.datastore, c.local_folder) for c in configs] == [
        ("a", "store", tmp_path),
        ("b", "store", tmp_path),
    ]
    with pytest.raises(HimlError, match="dataset_mountpoints has 1 entries but azure_datasets has 2"):
        HelloWorld(azure_datasets=["a", "b"], dataset_mountpoints=[Path("/m")]).get_input_datasets()


def test_a_model_whose_module_is_missing_fails_in_one_line_with_the_install_hint() -> None:
    registry: Registry[type] = Registry("model")
    registry.add("Needy", "himl_no_such_package.models:Needy", requires=("himl_no_such_package",), extra="needy")
    with pytest.raises(HimlError) as excinfo:
        registry.get("Needy")
    assert str(excinfo.value) == "model 'Needy' needs himl_no_such_package: pip install 'himl[needy]'"
    registry.add("HelloWorld", "himl_kernel.lightning.hello:HelloWorld", requires=("lightning",))
    assert registry.get("HelloWorld") is HelloWorld


def test_regression_test_compares_outputs_and_metrics_within_tolerance(tmp_path: Path) -> None:
    expected, outputs = tmp_path / "expected", tmp_path / "outputs"
    expected.mkdir()
    outputs.mkdir()
    (expected / "table.csv").write_text("a,b\n1.0,x\n")
    (outputs / "table.csv").write_text("a,b\n1.001,x\n")
    (expected / "metrics.json").write_text(json.dumps({"test/loss": 0.5}))
    compare_with_folder(expected, outputs, {"test/loss": 0.5004}, tolerance=0.01)
    with pytest.raises(HimlError) as excinfo:
        compare_with_folder(expected, outputs, {"test/loss": 0.6}, tolerance=0.0)
    message = str(excinfo.value)
    assert "table.csv: row 2, column 1: '1.001', expected '1.0'" in message
    assert "metric test/loss is 0.6, expected 0.5" in message and "\n" not in message


def test_processes_started_by_the_first_reuse_its_resolved_src_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = tmp_path / "fetched.ckpt"
    torch.save({"state_dict": {}}, local)
    reference = "0123456789abcdef:checkpoints/last.ckpt"  # a run this store does not know
    monkeypatch.setenv(ENV_RESOLVED_CHECKPOINT, f"{reference}\n{local}")
    assert resolve_source_checkpoint(HelloWorld(src_checkpoint=reference)) == local
    monkeypatch.delenv(ENV_RESOLVED_CHECKPOINT)
    monkeypatch.setenv("HIML_HOME", str(tmp_path / "home"))
    with pytest.raises(HimlError, match="unknown run id '0123456789abcdef'"):
        resolve_source_checkpoint(HelloWorld(src_checkpoint=reference))


class Tuned(HelloWorld):
    def get_parameter_tuning_args(self) -> dict[str, list[object]]:
        return {"l_rate": [0.01, 0.1], "batch_size": [8, 16]}


def test_hyperdrive_runs_the_parameter_grid_as_child_runs() -> None:
    sweep = Tuned(hyperdrive=True).get_sweep()
    assert sweep is not None and len(sweep.trials()) == 4
    assert {"l_rate": 0.1, "batch_size": 8} in sweep.trials()
    assert Tuned().get_sweep() is None
    with pytest.raises(HimlError, match="returned no values"):
        HelloWorld(hyperdrive=True).get_sweep()
