"""Built-in containers: HelloWorld (Lightning), the README's first job, and PlainHelloWorld (no torch)."""

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
        "himl_kernel.lightning.hello:HelloWorld",
        "1-D linear regression with Lightning on a CSV it writes itself; no GPU, no dataset needed",
        requires=("lightning",),
    )
    registry.add(
        "PlainHelloWorld",
        "himl_kernel.hello:PlainHelloWorld",
        "the same regression in plain Python: the kernel's example without torch",
    )
