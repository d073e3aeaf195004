"""Built-in containers: HelloWorld, the README's first job."""

from __future__ import annotations

from typing import TYPE_CHECKING

from himl_kernel import hookimpl

if TYPE_CHECKING:
    from himl_kernel.container import Container
    from himl_kernel.registry import Registry


@hookimpl
def himl_register_containers(registry: Registry[type[Container]]) -> None:
    registry.add(
        "HelloWorld",
        "himl_kernel.hello:HelloWorld",
        "1-D linear regression on a CSV it writes itself; no GPU, no dataset needed",
    )
