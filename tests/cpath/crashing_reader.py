"""A slide reader that kills its process on files named ``*crash*``, as a native crash would."""

from __future__ import annotations

import os
from pathlib import Path

from himl_cpath.readers.openslide_reader import OpenSlideReader


class CrashingReader(OpenSlideReader):
    backend = "openslide"

    def __init__(self, path: Path) -> None:
        if "crash" in Path(path).name:
            os._exit(3)
        super().__init__(path)
