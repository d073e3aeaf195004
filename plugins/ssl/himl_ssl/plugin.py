"""The himl-ssl plugin's entry module: registrations only, nothing heavy imported here.

It registers ``himl ssl`` (export-encoder), the generic ``SSLContainer`` and
hi-ml's named configurations; their modules (torch, Lightning, timm) load
only when one of them runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from himl_kernel import hookimpl

if TYPE_CHECKING:
    from himl_kernel.container import Container
    from himl_kernel.contracts import Command
    from himl_kernel.doctor import DoctorReport
    from himl_kernel.registry import Registry, RegistryCatalog

_REQUIRES = ("lightning", "timm", "torchmetrics", "torchvision")

#: Kept here as well as in himl_ssl.configs so that listing them imports nothing.
NAMED_CONFIGS = {
    "CRCK_SimCLR": "SimCLR pre-training of a resnet50 on TCGA-CRCk tiles, online MSI/MSS evaluator",
    "CRCK_BYOL": "BYOL pre-training of a resnet50 on TCGA-CRCk tiles, online MSI/MSS evaluator",
    "CIFAR10SimCLR": "SimCLR pre-training on CIFAR-10 (torchvision folder), online 10-class evaluator",
    "CIFAR10BYOL": "BYOL pre-training on CIFAR-10 (torchvision folder), online 10-class evaluator",
    "NIH_RSNA_SimCLR": "SimCLR pre-training on NIH Chest X-ray 14, online pneumonia evaluator on RSNA Pneumonia",
    "NIH_RSNA_BYOL": "BYOL pre-training on NIH Chest X-ray 14, online pneumonia evaluator on RSNA Pneumonia",
}


@hookimpl
def himl_register_commands(registry: Registry[Command]) -> None:
    registry.add("ssl", "himl_ssl.cli:command", "self-supervised encoders: export-encoder")


@hookimpl
def himl_register_containers(registry: Registry[type[Container]]) -> None:
    registry.add(
        "SSLContainer",
        "himl_ssl.container:SSLContainer",
        "SimCLR or BYOL pre-training of an image encoder with an online linear evaluator",
        requires=_REQUIRES,
    )
    for name, description in NAMED_CONFIGS.items():
        registry.add(name, f"himl_ssl.configs:{name}", description, requires=_REQUIRES)


@hookimpl
def himl_doctor(report: DoctorReport) -> None:
    report.requirements_of("himl-ssl", label="ssl")


#: The named registry this plugin offers: encoder factories by name, and ``from_export``.
SSL_ENCODERS = "ssl_encoders"
_ENCODER_NAMES = ("resnet18", "resnet50", "resnet101", "densenet121", "cifar_resnet18", "cifar_resnet50")


@hookimpl
def himl_register_registries(registries: RegistryCatalog) -> None:
    registries.declare(
        SSL_ENCODERS,
        "image encoder",
        "himl-ssl's encoders: NAME() gives (module, feature size) with random weights; "
        "from_export(weights, description) an SSL run's exported encoder",
    )


@hookimpl
def himl_register_entries(name: str, registry: Registry[object]) -> None:
    if name != SSL_ENCODERS:
        return
    for encoder in _ENCODER_NAMES:
        registry.add(encoder, f"himl_ssl.factories:{encoder}", f"a {encoder} with random weights (timm)")
    registry.add(
        "from_export",
        "himl_ssl.encoders:load_exported_encoder",
        "the encoder of an SSL run's encoder.safetensors and encoder.json",
    )
