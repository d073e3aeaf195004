"""A HelloWorld run's outputs/config.yaml, given back to ``himl run --config``, trains the same model again."""

from __future__ import annotations

import pytest
import torch

from .conftest import Store, run_here


@pytest.mark.slow
def test_the_config_yaml_of_a_helloworld_run_reproduces_it(store: Store) -> None:
    first = run_here(store, "--max_epochs", "2", "--l_rate", "0.02", "--random_seed", "3", "--adam_betas", "0.8,0.99")
    config = store.outputs(first) / "config.yaml"
    text = config.read_text(encoding="utf-8")
    assert "max_epochs: 2\n" in text and "random_seed: 3\n" in text and "adam_betas:\n- 0.8\n- 0.99\n" in text
    second = run_here(store, "--config", str(config))
    assert second.run_id != first.run_id
    assert (store.outputs(second) / "config.yaml").read_text(encoding="utf-8") == text
    before = store.runs.get(first.run_id)
    after = store.runs.get(second.run_id)
    assert after.params == before.params
    assert after.metrics["test/loss"] == before.metrics["test/loss"]
    weights = [
        torch.load(store.outputs(run) / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)[
            "state_dict"
        ]
        for run in (first, second)
    ]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
