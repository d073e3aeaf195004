"""A slide reader the tiling tests steer through the environment: it can kill its process, or read slowly.

``HIML_TEST_KILL_AT=<stem>`` ends the process (exit code 9, no Python error)
when a slide of that file name is opened, as a kill or a native crash would;
``HIML_TEST_SLOW=<seconds>`` makes every region read take that long.
Otherwise it is OpenSlide's reader.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from himl_cpath.readers.openslide_reader import OpenSlideReader


class SwitchReader(OpenSlideReader):
    backend = "openslide"

    def __init__(self, path: Path) -> None:
        if os.environ.get("HIML_TEST_KILL_AT") == Path(path).stem:
            os._exit(9)
        super().__init__(path)

    def _read(self, x: int, y: int, level: int, width: int, height: int):  # type: ignore[no-untyped-def]
        time.sleep(float(os.environ.get("HIML_TEST_SLOW") or 0))
        return super()._read(x, y, level, width, height)
