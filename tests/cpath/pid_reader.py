"""OpenSlide's reader, noting the process id of every region read in the file ``$HIML_TEST_PID_LOG``."""

from __future__ import annotations

import os

from himl_cpath.readers.openslide_reader import OpenSlideReader


class PidReader(OpenSlideReader):
    backend = "openslide"

    def _read(self, x: int, y: int, level: int, width: int, height: int):  # type: ignore[no-untyped-def]
        log = os.environ.get("HIML_TEST_PID_LOG")
        if log:
            with open(log, "a", encoding="utf-8") as handle:
                handle.write(f"{os.getpid()}\n")
        return super()._read(x, y, level, width, height)
