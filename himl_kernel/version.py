"""The kernel's version, in a module that imports nothing.

``himl_kernel.__version__`` re-exports it. Kernel modules that need the version
(the plugin host names the built-in plugins' distribution with it) read it from
here, so that importing it never imports the package ``himl_kernel``, whose
type-checking imports reach back into those same modules.
"""

from __future__ import annotations

__version__ = "0.1.0"
