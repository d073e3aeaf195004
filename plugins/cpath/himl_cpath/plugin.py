"""The himl-cpath plugin: registers ``himl cpath``, the DeepMIL container and its ``himl doctor`` checks.

Light on purpose: it imports nothing but the kernel's marker; the command's
module loads only when ``himl cpath`` runs, and DeepMIL's (torch, Lightning,
timm) only when ``himl run --model DeepMIL`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from himl_kernel import hookimpl

if TYPE_CHECKING:
    from himl_kernel.container import Container
    from himl_kernel.contracts import Command
    from himl_kernel.doctor import DoctorReport
    from himl_kernel.registry import Registry


#: The named DeepMIL configurations of :mod:`himl_cpath.mil_configs` and what each is.
MIL_CONFIGS = {
    "TcgaCrckImageNetMIL": "MSI vs MSS on TCGA-CRCk tiles: frozen ImageNet resnet18, attention MIL",
    "TcgaCrckSSLMIL": "MSI vs MSS on TCGA-CRCk tiles: frozen resnet18 from an SSL checkpoint, attention MIL",
    "TcgaCrckTransformerMIL": "MSI vs MSS on TCGA-CRCk tiles: ImageNet resnet18, transformer pooling",
    "PandaImageNetMIL": "ISUP grade of PANDA slides: frozen ImageNet resnet18, attention MIL",
    "PandaSSLMIL": "ISUP grade of PANDA slides: frozen resnet18 from an SSL checkpoint, attention MIL",
    "PandaTransformerMIL": "ISUP grade of PANDA slides: ImageNet resnet18, transformer pooling",
}


@hookimpl
def himl_register_commands(registry: Registry[Command]) -> None:
    registry.add(
        "cpath",
        "himl_cpath.cli:command",
        "pathology slides: tile, montage, dsa-upload, export-annotations, figures, info",
    )


@hookimpl
def himl_register_containers(registry: Registry[type[Container]]) -> None:
    registry.add(
        "DeepMIL",
        "himl_cpath.deepmil:DeepMIL",
        "slide classification by attention-based multiple-instance learning over tiles (timm encoder)",
        requires=("lightning", "timm", "torchmetrics"),
    )
    for name, description in MIL_CONFIGS.items():
        registry.add(
            name, f"himl_cpath.mil_configs:{name}", description, requires=("lightning", "timm", "torchmetrics")
        )


@hookimpl
def himl_doctor(report: DoctorReport) -> None:
    # What this plugin's metadata requires (openslide, tifffile, timm, the cuCIM extras...), each a row; nothing
    # is imported to find out.
    report.requirements_of("himl-cpath", label="cpath")
