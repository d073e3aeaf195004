"""himl-amulet: himl jobs submitted to Singularity through Amulet (``amlt``).

``himl run --compute amulet --amulet-target NAME ...`` writes ``amlt.yaml`` at
the snapshot root and runs ``amlt run``; inside the job, the plugin recognises
Amulet's environment and fills the run's folders. The entry module,
:mod:`himl_amulet.plugin`, imports nothing beyond the kernel.
"""
