"""Progress of long steps: counts, rate and time left.

On a terminal it is a tqdm bar; otherwise (a job's log, a pipe) a
timestamped line at the start, at most every ``interval`` seconds after that,
and at the end, e.g.::

    2026-12-02 00:35:13 tiling: 3 of 16 slides, 0.52 slides/s, 25 s left

Messages about single items go through :meth:`Progress.note`, which prints
above a bar without breaking it.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from types import TracebackType
from typing import IO, Any

#: Seconds between two progress lines when the output is not a terminal.
LINE_INTERVAL = 10.0


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """Counts ``total`` items of one step; use as a context manager and call :meth:`update` per item.

    ``bar`` chooses a tqdm bar (default: when the stream is a terminal);
    ``show=False`` counts without printing anything.
    """

    def __init__(
        self,
        what: str,
        total: int,
        unit: str,
        *,
        stream: IO[str] | None = None,
        interval: float = LINE_INTERVAL,
        bar: bool | None = None,
        show: bool = True,
    ) -> None:
        self.what, self.total, self.unit = what, total, unit
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.show = show
        self.done = 0
        self.start = time.monotonic()
        self._last_line = -float("inf")
        use_bar = show and (bar if bar is not None else self.stream.isatty())
        self._bar: Any = None
        if use_bar:
            import importlib

            tqdm = importlib.import_module("tqdm").tqdm  # tqdm ships no type hints
            self._bar = tqdm(total=total, desc=what, unit=f" {unit}", file=self.stream, dynamic_ncols=True)
        elif show:
            self._line()

    def line(self) -> str:
        """The progress line as it stands: counts, rate and time left."""
        elapsed = time.monotonic() - self.start
        text = f"{self.what}: {self.done} of {self.total} {self.unit}"
        if self.done and elapsed > 0:
            rate = self.done / elapsed
            text += f", {rate:.3g} {self.unit}/s"
            if self.done < self.total:
                text += f", {_duration((self.total - self.done) / rate)} left"
            else:
                text += f", took {_duration(elapsed)}"
        return text

    def _line(self) -> None:
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        print(f"{stamp} {self.line()}", file=self.stream, flush=True)
        self._last_line = time.monotonic()

    def update(self, count: int = 1) -> None:
        """``count`` more items are done."""
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
        elif self.show and (self.done >= self.total or time.monotonic() - self._last_line >= self.interval):
            self._line()

    def note(self, message: str) -> None:
        """One line about an item (a slide finished, skipped or failed)."""
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
