"""himl-ssl: self-supervised pre-training (SimCLR, BYOL) for himl.

The entry module, :mod:`himl_ssl.plugin`, imports nothing beyond the kernel.
"""
