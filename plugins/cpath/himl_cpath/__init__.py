"""himl-cpath: computational pathology for himl.

Slides are read through :func:`himl_cpath.slides.open_slide` (OpenSlide, a
tifffile reader for plain pyramidal TIFFs, cuCIM where installed), tiled with
:mod:`himl_cpath.tiling`, shown as montages with :mod:`himl_cpath.montage`
and annotated on a Digital Slide Archive with :mod:`himl_cpath.dsa`; the
``himl cpath`` command offers each of these on the command line. Slides are
classified by DeepMIL (``himl run --model DeepMIL``, :mod:`himl_cpath.deepmil`):
timm tile encoders, the poolings of :mod:`himl_cpath.pooling` and a cache of
tile features (:mod:`himl_cpath.feature_cache`).

Importing this package imports nothing heavy.
"""

__version__ = "0.1.0"
