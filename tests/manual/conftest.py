"""The manual's examples as tests: the AzureML fixtures (control plane, Azurite, a workspace folder) and helpers.

Each example is the manual's code with only ``health_azure`` changed to
``himl_azure_v2``. Where the manual leaves a helper undefined (``read_image``...)
the test defines the smallest stand-in beside it, and says so.
"""

from __future__ import annotations

from tests.azure_v2.conftest import (  # noqa: F401 (fixtures, shared with the plugin's own tests)
    _no_azure_identity,
    azurite,
    control_plane,
    fresh_containers,
    workspace_dir,
)


def as_himl(code: str) -> str:
    """The manual's code with only its import changed."""
    changed = code.replace("from health_azure import", "from himl_azure_v2 import")
    assert "health_azure" not in changed
    return changed
