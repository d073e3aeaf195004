"""Offline tiling: slides in, a tiles dataset out.

The output folder holds one sub-folder of tile images per slide and a
``dataset.csv`` with the columns of :data:`TILE_COLUMNS`. Work is spread over
processes: first each slide's tissue mask and tile plan, then its tiles in
batches, so that even a single slide uses every process.

A slide's folder and tile files are named by :func:`himl_cpath.safe_names.file_stem`
of its id (the id itself when it is a plain name), never by the raw id, and
nothing is written or deleted outside the output folder.

Resuming: a slide is finished once its own ``<slide folder>/dataset.csv`` exists
(it is written last, under a temporary name then renamed). A later run skips
finished slides and redoes a slide whose folder has no such file. A slide
that fails is recorded in ``failed_slides.csv`` and skipped; the others go
on. ``tiling.json`` keeps the tiling options, so that a resumed run cannot mix
tiles cut two different ways. The combined ``dataset.csv`` lists every finished
slide of the folder, also those of earlier runs with other ``--include`` lists.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from himl_cpath.safe_names import check_distinct, file_stem, inside
from himl_cpath.slide_table import SlideRecord
from himl_cpath.tiling import TileBlock, TilingOptions
from himl_kernel.atomic import atomic_write_text
from himl_kernel.errors import HimlError

TILE_COLUMNS = ("slide_id", "tile_id", "image", "label", "tile_x", "tile_y", "occupancy")
FAILED_COLUMNS = ("slide_id", "image", "error")
SLIDE_TABLE = "dataset.csv"
OPTIONS_FILE = "tiling.json"
FAILED_FILE = "failed_slides.csv"


@dataclass(frozen=True)
class WriteOptions:
    """How tile images are stored."""

    image_format: str = "png"  # png (lossless) or jpeg
    #: quality of JPEG tiles, 1-100 (libjpeg's scale)
    jpeg_quality: int = 90
    #: zlib level of PNG tiles, 0-9: the pixels are the same at every level; 1 costs about a third of the default 6
    png_level: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.png_level <= 9:
            raise HimlError(f"PNG compression level must be 0 to 9, got {self.png_level}")
        if not 1 <= self.jpeg_quality <= 100:
            raise HimlError(f"JPEG quality must be 1 to 100, got {self.jpeg_quality}")

    @property
    def suffix(self) -> str:
        return ".png" if self.image_format == "png" else ".jpg"


@dataclass
class TilingReport:
    """What a run of :func:`tile_slides` did."""

    output: Path
    tiled: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    tiles: int = 0


def encode_tile(pixels: Any, write: WriteOptions) -> bytes:
    """A tile image file's bytes: PNG with fast settings (zlib ``png_level``, RLE, Sub filter), or JPEG."""
    import imagecodecs

    if write.image_format == "png":
        return bytes(imagecodecs.png_encode(pixels, level=write.png_level, strategy=3, filter=16))
    return bytes(imagecodecs.jpeg8_encode(pixels, level=write.jpeg_quality))


def tile_id_for(slide_id: str, x: int, y: int) -> str:
    return f"{slide_id}_x{x}_y{y}"


def slide_folder(output: Path, slide_id: str) -> Path:
    """The folder of one slide's tiles: a safe name made from its id, inside ``output``."""
    return inside(output, output / file_stem(slide_id))


# -- work done in the worker processes ------------------------------------------


class TaskError(Exception):
    """A worker's failure, already reduced to one line, so that it always pickles."""


def _task(kind: str, *args: Any) -> Any:
    """Run the worker task ``kind`` ("plan" or "write"); any failure comes back as a TaskError."""
    try:
        return (_plan if kind == "plan" else _write_batch)(*args)
    except Exception as exc:
        raise TaskError(_one_line(exc)) from None


def _plan(
    record: SlideRecord, options: TilingOptions, backend: str | None, tiles_per_batch: int
) -> list[list[TileBlock]]:
    from himl_cpath.feature_stream import block_cells
    from himl_cpath.slide import open_slide
    from himl_cpath.tiling import chunk_by_tiles, group_tiles, plan_tiles, tissue_mask_for

    with open_slide(record.image, backend) as reader:
        mask = tissue_mask_for(reader, options, record.mask)
        blocks = group_tiles(plan_tiles(reader, mask, options), reader, options, block=block_cells(reader))
    return chunk_by_tiles(blocks, tiles_per_batch)


def _write_batch(
    record: SlideRecord,
    blocks: list[TileBlock],
    options: TilingOptions,
    backend: str | None,
    output: Path,
    write: WriteOptions,
) -> list[dict[str, Any]]:
    from himl_cpath.slide import open_slide
    from himl_cpath.tiling import read_tiles

    stem = file_stem(record.slide_id)
    folder = inside(output, output / stem)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    with open_slide(record.image, backend) as reader:
        for tile, pixels in read_tiles(reader, blocks, options):
            tile_id = tile_id_for(record.slide_id, tile.x, tile.y)
            relative = f"{stem}/{tile_id_for(stem, tile.x, tile.y)}{write.suffix}"
            (output / relative).write_bytes(encode_tile(pixels, write))
            rows.append(
                {
                    "slide_id": record.slide_id,
                    "tile_id": tile_id,
                    "image": relative,
                    "label": record.label,
                    "tile_x": tile.x,
                    "tile_y": tile.y,
                    "occupancy": f"{tile.occupancy:.4f}",
                }
            )
    return rows


def _watch_parent(parent: int) -> None:
    """In a worker: end this process as soon as the process that started it is gone (killed, crashed)."""
    import os
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="himl-parent-watch", daemon=True).start()


# -- orchestration, in the calling process ----------------------------------------


class _InlineExecutor(Executor):
    """Runs each task at once, in this process (``processes=1``)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(columns))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, text.getvalue())


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _check_options(output: Path, settings: dict[str, Any]) -> None:
    file = output / OPTIONS_FILE
    if file.is_file():
        try:
            before = json.loads(file.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise HimlError(
                f"{file} is not valid JSON ({_one_line(exc)}); delete it, or start over with --overwrite"
            ) from None
        if not isinstance(before, dict):
            raise HimlError(f"{file} should hold the tiling options as a JSON object; delete it, or use --overwrite")
        if before != settings:
            changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
            raise HimlError(
                f"{output} holds tiles made with other options ({', '.join(changed)} differ); "
                "use a new output folder, or --overwrite"
            )
    output.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(settings, indent=2, sort_keys=True), encoding="utf-8")


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, TaskError):
        return str(exc)
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class _Job:
    """One call of :func:`tile_slides`: its settings, and the report it fills."""

    output: Path
    options: TilingOptions
    backend: str | None
    write: WriteOptions
    tiles_per_batch: int
    report: TilingReport
    say: Callable[[str], None]
    tick: Callable[[], None] = lambda: None

    def folder(self, record: SlideRecord) -> Path:
        """The slide's own folder, checked to lie inside the output."""
        return slide_folder(self.output, record.slide_id)

    def fail(self, record: SlideRecord, reason: str) -> None:
        shutil.rmtree(self.folder(record), ignore_errors=True)
        self.report.failed[record.slide_id] = reason
        self.say(f"failed {record.slide_id}: {reason}")
        self.tick()

    def run(self, pending: Sequence[SlideRecord], workers: int) -> list[SlideRecord]:
        """Tile ``pending`` with ``workers`` processes (0: in this one).

        Each slide is finished (its own table written) as soon as its last
        batch is, whichever order the workers end in; new slides are planned
        only when a worker has nothing else to do, so that a run killed part way
        keeps every slide it finished and redoes only the ones it had begun.
        Returns the slides left unfinished because a worker process died.
        """
        executor: Executor
        if workers > 0 and pending:
            import multiprocessing
            import os

            executor = ProcessPoolExecutor(
                workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_watch_parent,
                initargs=(os.getpid(),),
            )
        else:
            executor = _InlineExecutor()
        queue = deque(pending)
        crashed: list[SlideRecord] = []
        failed_here: list[SlideRecord] = []
        inflight: dict[Future[Any], tuple[str, SlideRecord]] = {}
        remaining: dict[str, int] = {}
        rows: dict[str, list[dict[str, Any]]] = {}
        broken = False

        def drop(record: SlideRecord) -> None:
            for future, (_, owner) in inflight.items():
                if owner is record:
                    future.cancel()

        with executor:
            while queue or inflight:
                # a new slide is planned only when a worker would otherwise idle, so slides finish in turn
                while queue and len(inflight) < max(1, workers) and not broken:
                    record = queue.popleft()
                    try:
                        future = executor.submit(
                            _task, "plan", record, self.options, self.backend, self.tiles_per_batch
                        )
                    except BrokenProcessPool:
                        queue.appendleft(record)
                        broken = True
                        break
                    inflight[future] = ("plan", record)
                if broken:
                    crashed.extend(queue)
                    queue.clear()
                if not inflight:
                    break
                done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                for future in done:
                    kind, record = inflight.pop(future)
                    if record in crashed or record in failed_here or future.cancelled():
                        continue
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        broken = True
                        crashed.append(record)
                        drop(record)
                        continue
                    except Exception as exc:
                        failed_here.append(record)
                        drop(record)
                        self.fail(record, _one_line(exc))
                        continue
                    if kind == "write":
                        rows[record.slide_id].extend(result)
                        remaining[record.slide_id] -= 1
                    else:
                        rows[record.slide_id] = []
                        remaining[record.slide_id] = 0
                        for batch in result:
                            try:
                                task = executor.submit(
                                    _task, "write", record, batch, self.options, self.backend, self.output, self.write
                                )
                            except BrokenProcessPool:
                                broken = True
                                crashed.append(record)
                                drop(record)
                                break
                            inflight[task] = ("write", record)
                            remaining[record.slide_id] += 1
                    if record not in crashed and remaining[record.slide_id] == 0:
                        self.finish(record, rows.pop(record.slide_id))
        # tasks that were already running when their slide failed or crashed may have written tiles since
        for record in failed_here + crashed:
            shutil.rmtree(self.folder(record), ignore_errors=True)
        return crashed

    def finish(self, record: SlideRecord, rows: list[dict[str, Any]]) -> None:
        rows.sort(key=lambda row: (row["tile_y"], row["tile_x"]))
        self.folder(record).mkdir(parents=True, exist_ok=True)
        _write_csv(self.folder(record) / SLIDE_TABLE, TILE_COLUMNS, rows)
        self.report.tiled.append(record.slide_id)
        self.report.tiles += len(rows)
        self.say(f"tiled {record.slide_id}: {len(rows)} tiles")
        self.tick()


def _write_combined(output: Path, slides: Sequence[SlideRecord], report: TilingReport) -> None:
    """``failed_slides.csv`` and the combined ``dataset.csv``, over this run's slides and every earlier one.

    A slide tiled by an earlier run (another ``--include`` list, say) keeps its
    rows: the combined table lists this run's slides in their order, then every
    other finished slide folder of ``output`` by name.
    """
    ours = {r.slide_id for r in slides}
    failed_before = _read_csv(output / FAILED_FILE) if (output / FAILED_FILE).is_file() else []
    failed = [row for row in failed_before if row.get("slide_id") not in ours]
    failed += [
        {"slide_id": r.slide_id, "image": str(r.image), "error": report.failed[r.slide_id]}
        for r in slides
        if r.slide_id in report.failed
    ]
    _write_csv(output / FAILED_FILE, FAILED_COLUMNS, failed)
    tables = [slide_folder(output, r.slide_id) / SLIDE_TABLE for r in slides]
    known = {t.parent.name for t in tables}
    tables += sorted(t for t in output.glob(f"*/{SLIDE_TABLE}") if t.parent.name not in known)
    combined: list[dict[str, Any]] = []
    for table in tables:
        if table.is_file():
            combined.extend(_read_csv(table))
    _write_csv(output / SLIDE_TABLE, TILE_COLUMNS, combined)


def tile_slides(
    slides: Sequence[SlideRecord],
    output: Path,
    options: TilingOptions | None = None,
    *,
    processes: int = 1,
    backend: str | None = None,
    write: WriteOptions | None = None,
    overwrite: bool = False,
    tiles_per_batch: int = 256,
    progress: Callable[[str], None] | None = None,
    show_progress: bool = False,
) -> TilingReport:
    """Tile ``slides`` into the tiles dataset at ``output``; see the module docstring.

    Args:
        slides: the slides, with their labels and optional masks.
        output: the dataset folder (created; resumed when it exists).
        options: tile size, level, overlap, minimum occupancy, mask level.
        processes: worker processes; 1 works in this process.
        backend: slide reader backend(s), as :func:`himl_cpath.slide.open_slide` takes.
        write: tile image format.
        overwrite: delete what ``output`` holds first, instead of resuming.
        tiles_per_batch: tiles one task reads and writes.
        progress: called with one line per finished or failed slide.
        show_progress: show counts, rate and time left on stderr
            (:class:`himl_cpath.progress.Progress`); the per-slide lines go
            there too unless ``progress`` is given.

    Returns:
        Which slides were tiled, skipped as finished, or failed (and why).
    """
    options = options or TilingOptions()
    write = write or WriteOptions()
    if write.image_format not in ("png", "jpeg"):
        raise HimlError(f"tile image format must be png or jpeg, got {write.image_format!r}")
    if output.exists() and not output.is_dir():
        raise HimlError(f"tiles output {output} is a file, not a folder; give a folder")
    check_distinct((r.slide_id for r in slides), "slides")
    if overwrite and output.exists():
        shutil.rmtree(output)
    settings = {**options.as_dict(), "image_format": write.image_format, "backend": backend or "auto"}
    if write.image_format == "jpeg":  # lossy: a resumed run must not mix qualities
        settings["jpeg_quality"] = write.jpeg_quality
    _check_options(output, settings)
    say = progress or (lambda line: None)
    report = TilingReport(output)

    pending: list[SlideRecord] = []
    for record in slides:
        folder = slide_folder(output, record.slide_id)
        if (folder / SLIDE_TABLE).is_file():
            report.skipped.append(record.slide_id)
            continue
        if folder.exists():  # half done by an earlier run: start that slide again
            shutil.rmtree(folder)
        pending.append(record)

    counter = None
    if show_progress:
        from himl_cpath.progress import Progress

        if report.skipped:
            print(f"{len(report.skipped)} of {len(slides)} slides already tiled in {output}", file=sys.stderr)
        counter = Progress("tiling", len(pending), "slides")
        say = progress or counter.note
    tick: Callable[[], None] = counter.update if counter else _no_tick
    job = _Job(output, options, backend, write, tiles_per_batch, report, say, tick)
    try:
        crashed = job.run(pending, workers=processes if processes > 1 else 0)
        # A worker that dies (a crash inside a native reader) takes the pool with it:
        # the slides it left unfinished are tried again, each in a process of its own,
        # so that only the slide that crashes is recorded as failed.
        for record in crashed:
            if job.run([record], workers=1):
                job.fail(record, "the worker process died while reading this slide (a crash in the slide reader)")
    finally:
        if counter is not None:
            counter.close()

    _write_combined(output, slides, report)
    return report


def print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _no_tick() -> None:
    """What a slide's completion tells the progress counter when there is none."""
