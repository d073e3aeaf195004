"""An import-linter contract type: code outside a package imports only the modules it declares public.

import-linter's own contracts forbid imports of listed modules (a deny list);
this one allows imports of listed modules only, so a kernel module added
later is private until it is declared. ``.importlinter`` at the repository
root uses it for the kernel's public API::

    [importlinter:contract:public-api]
    type = public_api
    package = himl_kernel
    importers = himl_cpath, himl_azure_v2, himl_kernel.lightning
    public_modules = himl_kernel, himl_kernel.errors, ...

Only direct imports count (a public module may use private ones); the
importers' imports of their own modules are not checked.
"""

from __future__ import annotations

from typing import Any

from importlinter import Contract, ContractCheck, fields, output


class PublicApiContract(Contract):
    """``importers`` import from ``package`` only the modules in ``public_modules``."""

    type_name = "public_api"

    package = fields.StringField()
    importers = fields.ListField(subfield=fields.StringField())
    public_modules = fields.ListField(subfield=fields.StringField())

    def check(self, graph: Any, verbose: bool) -> ContractCheck:
        package: str = self.package  # type: ignore[assignment]
        public = set(self.public_modules)  # type: ignore[arg-type]
        unknown = sorted(name for name in public if name not in graph.modules)
        illegal: list[dict[str, Any]] = []
        for importer_root in self.importers:  # type: ignore[attr-defined]
            own = {importer_root, *graph.find_descendants(importer_root)}
            for importer in sorted(own):
                for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                    inside = imported == package or imported.startswith(f"{package}.")
                    if not inside or imported in own or imported in public:
                        continue
                    details = graph.get_import_details(importer=importer, imported=imported)
                    lines = sorted({d["line_number"] for d in details})
                    illegal.append({"importer": importer, "imported": imported, "lines": lines})
        return ContractCheck(kept=not illegal and not unknown, metadata={"illegal": illegal, "unknown": unknown})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for name in check.metadata["unknown"]:
            output.print_error(f"- {name} is declared public but is not a module of the package", bold=False)
            output.new_line()
        if check.metadata["illegal"]:
            output.print_error(f"Only the public modules of {self.package} may be imported:", bold=False)
            output.new_line()
        for link in check.metadata["illegal"]:
            lines = ", ".join(map(str, link["lines"]))
            output.print_error(f"- {link['importer']} -> {link['imported']} (l.{lines})", bold=False)
            output.new_line()
