"""The plugin's registrations: its containers, its command, and the ``ssl_encoders`` registry other plugins read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from himl_ssl import plugin
from himl_ssl.encoders import create_encoder, load_exported_encoder
from safetensors.torch import save_file

from himl_kernel.testing import fresh_host


def test_the_plugin_registers_its_containers_and_command() -> None:
    host = fresh_host(plugin)
    named = {"CRCK_SimCLR", "CRCK_BYOL", "CIFAR10SimCLR", "CIFAR10BYOL", "NIH_RSNA_SimCLR", "NIH_RSNA_BYOL"}
    assert {"SSLContainer", *named} <= set(host.containers.names())
    assert host.containers.get("CIFAR10BYOL")().ssl_training_type == "BYOL"  # type: ignore[attr-defined]
    nih_rsna: Any = host.containers.get("NIH_RSNA_BYOL")()
    assert (nih_rsna.ssl_training_dataset_name, nih_rsna.linear_head_dataset_name) == ("NIH", "RSNA")
    assert nih_rsna.ssl_training_type == "BYOL" and nih_rsna.use_balanced_binary_loss_for_linear_head
    assert "ssl" in host.commands.names()


def test_the_ssl_encoders_registry_builds_encoders_and_exports(tmp_path: Path) -> None:
    registry = fresh_host(plugin).named_registry("ssl_encoders")
    assert {"resnet18", "densenet121", "cifar_resnet18", "from_export"} <= set(registry.names())
    module, size = registry.get("cifar_resnet18")()  # type: ignore[operator]
    assert size == 512 and module(torch.rand(1, 3, 32, 32)).shape == (1, 512)

    trained, _ = create_encoder("cifar_resnet18")
    save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, str(tmp_path / "encoder.safetensors"))
    (tmp_path / "encoder.json").write_text(json.dumps({"architecture": "cifar_resnet18"}))
    loaded, _ = registry.get("from_export")(str(tmp_path / "encoder.safetensors"), str(tmp_path / "encoder.json"))  # type: ignore[operator]
    for key, value in trained.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    assert load_exported_encoder is registry.get("from_export")
