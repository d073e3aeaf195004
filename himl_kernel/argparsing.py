"""An ArgumentParser whose usage errors are one-line HimlErrors."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from himl_kernel.errors import HimlError


class HimlArgumentParser(argparse.ArgumentParser):
    """Raises :class:`HimlError` instead of printing usage and exiting; no abbreviations."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise HimlError(f"{self.prog}: {message}")
