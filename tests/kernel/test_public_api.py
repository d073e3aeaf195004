"""The kernel's declared public API: one list, in the package docstring and in the import-linter contract."""

from __future__ import annotations

import configparser
import importlib
import json
import re
import subprocess
import sys

import himl_kernel

from ..conftest import REPO


def contract_modules() -> list[str]:
    config = configparser.ConfigParser()
    config.read(REPO / ".importlinter", encoding="utf-8")
    return config["importlinter:contract:public-api"]["public_modules"].split()


def documented_modules() -> list[str]:
    assert himl_kernel.__doc__ is not None
    return ["himl_kernel", *re.findall(r"^- ``(himl_kernel[\w.]*)``", himl_kernel.__doc__, flags=re.MULTILINE)]


def test_the_docstring_and_the_import_contract_declare_the_same_modules() -> None:
    assert documented_modules() == contract_modules()
    for name in contract_modules():
        importlib.import_module(name)


def test_every_name_the_package_offers_lives_in_a_public_module_and_resolves() -> None:
    public = set(contract_modules())
    for name, module in himl_kernel._LAZY.items():
        assert module in public, f"himl_kernel.{name} comes from {module}, which is not declared public"
        assert getattr(himl_kernel, name) is getattr(importlib.import_module(module), name)


def test_the_trainer_services_import_nothing_heavy() -> None:
    probe = (
        "import json, sys\n"
        "import himl_kernel.atomic, himl_kernel.current, himl_kernel.distributed, himl_kernel.recovery\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    loaded = {name.split(".")[0] for name in json.loads(done.stdout)}
    assert not loaded & {"torch", "lightning", "mlflow", "azure", "transformers"}
