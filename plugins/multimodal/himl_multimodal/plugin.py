"""The himl-multimodal plugin: BioViL, BioViL-T and CXR-BERT from local weights.

What it registers (targets are import paths, loaded only when used; this module imports nothing beyond the kernel):

- subcommand ``himl multimodal ground|zero-shot|embed``;
- container ``ImageTextContrastive``: CLIP-style training of an image and a text model on (image, report) pairs.

The Python API has hi-ml's names: :mod:`himl_multimodal.image` (``get_image_inference``),
:mod:`himl_multimodal.text` (``get_bert_inference``) and :mod:`himl_multimodal.vlp` (``ImageTextInferenceEngine``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from himl_kernel import hookimpl

if TYPE_CHECKING:
    from himl_kernel.container import Container
    from himl_kernel.contracts import Command
    from himl_kernel.registry import Registry


@hookimpl
def himl_register_commands(registry: Registry[Command]) -> None:
    registry.add(
        "multimodal",
        "himl_multimodal.cli:MultimodalCommand",
        "vision-language: phrase grounding, zero-shot, embeddings",
    )


@hookimpl
def himl_register_containers(registry: Registry[type[Container]]) -> None:
    registry.add(
        "ImageTextContrastive",
        "himl_multimodal.training.container:ImageTextContrastive",
        "contrastive training of BioViL-style image and CXR-BERT text models on (image, report) pairs",
        requires=("lightning", "torchvision", "transformers"),
    )
