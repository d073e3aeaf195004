"""himl-multimodal: BioViL, BioViL-T and CXR-BERT vision-language models for himl.

The entry module, :mod:`himl_multimodal.plugin`, imports nothing beyond the kernel.
"""
