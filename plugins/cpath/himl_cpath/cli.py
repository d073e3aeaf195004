"""``himl cpath``: tile, montage, dsa-upload, export-annotations, figures and info, on the command line.

The module is imported only when ``himl cpath`` runs; each subcommand
imports what it needs when it is chosen.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from himl_cpath.slide_table import SlideRecord
    from himl_kernel.plugins import PluginHost


def _add_slide_source(parser: argparse.ArgumentParser, *, optional: bool = False) -> None:
    what = "a folder of slides, or a dataset.csv (image, slide_id, label, mask)"
    if optional:  # hi-ml's scripts name it with --dataset instead
        parser.add_argument("source", type=Path, nargs="?", default=None, help=f"{what}; or give --dataset")
    else:
        parser.add_argument("source", type=Path, help=what)
    parser.add_argument("--glob", default="", help="file pattern inside a folder, e.g. '*.svs' or '**/*.tiff'")
    parser.add_argument(
        "--include", action="append", default=[], metavar="IDS", help="only these slide ids (comma list or @file)"
    )
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="IDS", help="leave out these slide ids (comma list or @file)"
    )
    parser.add_argument(
        "--backend", default="auto", help="slide reader: openslide, cucim, tifffile, a comma list, or auto (that order)"
    )
    parser.add_argument("--processes", type=int, default=1, help="worker processes (default: 1)")


def _slides(args: argparse.Namespace) -> list[SlideRecord]:
    from himl_cpath.slide import backend_order
    from himl_cpath.slide_table import load_slides, read_id_list

    backend_order(args.backend)  # an unknown name fails before any work
    if args.processes < 1:
        raise HimlError(f"--processes must be at least 1, got {args.processes}")
    slides = load_slides(args.source, args.glob, read_id_list(args.include), read_id_list(args.exclude))
    if not slides:
        raise HimlError(f"no slides found in {args.source}" + (f" matching {args.glob!r}" if args.glob else ""))
    return slides


def _tile(args: argparse.Namespace, host: PluginHost) -> int:
    from himl_cpath.tiles_dataset import WriteOptions, tile_slides
    from himl_cpath.tiling import TilingOptions

    slides = _slides(args)
    job_outputs = _job_outputs(host)
    output = args.output or (job_outputs / "tiles" if job_outputs else None)
    if output is None:
        raise HimlError("himl cpath tile: --output is required outside a job")
    options = TilingOptions(
        tile_size=args.tile_size,
        level=args.level,
        overlap=args.overlap,
        min_occupancy=args.min_occupancy,
        mask_level=args.mask_level,
    )
    report = tile_slides(
        slides,
        output,
        options,
        processes=args.processes,
        backend=args.backend,
        write=WriteOptions(image_format=args.format, png_level=args.png_level, jpeg_quality=args.jpeg_quality),
        overwrite=args.overwrite,
        show_progress=True,
    )
    print(
        f"{report.tiles} tiles from {len(report.tiled)} slides into {report.output / 'dataset.csv'}; "
        f"{len(report.skipped)} already done, {len(report.failed)} failed"
    )
    if report.failed:
        print(
            f"himl: warning: {len(report.failed)} slide(s) failed, listed in {report.output / 'failed_slides.csv'}",
            file=sys.stderr,
        )
        return 1
    return 0


def _job_outputs(host: PluginHost) -> Path | None:
    """The outputs folder of the job this process runs in, if it runs in one."""
    run = host.detect_run(os.environ)
    return Path(run.output_folder) if run is not None else None


#: hi-ml's create_montage.py flags that send the work to AzureML, and this plugin's spelling of each
_AZURE_FLAGS = {"cluster": "--cluster", "conda_env": "--conda_env", "datastore": "--datastore"}


def _montage_source(args: argparse.Namespace) -> None:
    """``args.source`` from the positional folder or hi-ml's ``--dataset`` (a folder means its dataset.csv)."""
    given = [name for name, value in (("SOURCE", args.source), ("--dataset", args.dataset)) if value is not None]
    if len(given) != 1:
        raise HimlError(
            "himl cpath montage: give the slides once, as SOURCE or as --dataset"
            + (f" (got both {args.source} and {args.dataset})" if len(given) == 2 else "")
        )
    if args.dataset is not None:
        table = args.dataset / "dataset.csv"
        # as hi-ml's create_montage.py: a folder without a pattern is read through its dataset.csv
        args.source = table if args.dataset.is_dir() and not args.glob and table.is_file() else args.dataset


def _montage(args: argparse.Namespace, host: PluginHost) -> int:
    from himl_cpath.montage import make_montage

    azure = [flag for dest, flag in _AZURE_FLAGS.items() if getattr(args, f"azure_{dest}") is not None]
    if azure:
        raise HimlError(
            f"himl cpath montage {' '.join(azure)}: this command runs here only; to run it in AzureML use "
            "himl submit --module himl_cpath --compute azureml --cluster NAME [--conda-file environment.yml] "
            "[--input-dataset DATASET] -- montage SOURCE --output outputs"
        )
    _montage_source(args)
    output = args.output or _job_outputs(host) or Path(".")
    result = make_montage(
        _slides(args),
        output,
        level=args.level,
        width=args.width,
        processes=args.processes,
        backend=args.backend,
        show_progress=True,
    )
    print(f"montage of {len(result.shown)} slides: {result.png} and {result.jpg}")
    return 0


def _dsa_upload(args: argparse.Namespace, host: PluginHost) -> int:
    from himl_cpath.dsa import connect, read_attention_table, upload_attention

    slides = read_attention_table(args.table, args.tile_size)
    client = connect(url=args.dsa_url)
    report = upload_attention(
        client,
        slides,
        folder_id=args.folder_id,
        name=args.name,
        warn=lambda line: print(line, file=sys.stderr),
        show_progress=True,
    )
    print(f"uploaded {len(report.uploaded)} annotation(s); {len(report.missing)} slide(s) had no DSA item")
    return 1 if report.missing else 0


def _export_annotations(args: argparse.Namespace, host: PluginHost) -> int:
    from himl_cpath.dsa import read_attention_table
    from himl_cpath.geojson_export import export_annotations

    slides = read_attention_table(args.table, args.tile_size)
    output = args.output or args.table.parent / "annotations"
    written = export_annotations(slides, output, show_progress=True)
    for path in written:
        print(f"wrote {path}")
    print(f"{len(written)} GeoJSON file(s) of tile attention in {output}")
    return 0


def _figures(args: argparse.Namespace, host: PluginHost) -> int:
    import csv

    from himl_cpath.mil_figures import write_figures
    from himl_cpath.slide import backend_order
    from himl_cpath.slide_table import load_slides

    backend_order(args.backend)
    if not args.table.is_file():
        raise HimlError(f"test output {args.table} does not exist")
    with args.table.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        rows = list(reader)
    missing = [c for c in ("slide_id", "label", "tile_x", "tile_y", "attention") if c not in columns]
    if missing:
        raise HimlError(f"{args.table} lacks the columns {', '.join(missing)}: is it a DeepMIL test_output.csv?")
    num_classes = sum(1 for c in columns if c.startswith("prob_"))
    if num_classes < 2:
        raise HimlError(f"{args.table} has no prob_0, prob_1, ... columns: is it a DeepMIL test_output.csv?")
    slides = {r.slide_id: r for r in load_slides(args.slides)} if args.slides else {}
    output = args.output or args.table.parent
    written = write_figures(
        output,
        rows,
        slides,
        num_classes=num_classes,
        tile_size=args.tile_size,
        tile_level=args.tile_level,
        top_k=args.top_k,
        backend=args.backend,
        tiles_root=args.tiles_root,
        max_slides=args.max_slides,
        show_progress=True,
        shared_scale=not args.per_slide_scale,
    )
    for path in written:
        print(f"wrote {path}")
    print(f"{len(written)} figures of {len({r['slide_id'] for r in rows})} slides in {output}")
    return 0


def _info(args: argparse.Namespace, host: PluginHost) -> int:
    from himl_cpath.slide import open_slide

    with open_slide(args.slide, args.backend) as reader:
        info = reader.info()
    print(f"slide:      {info.path}")
    print(f"backend:    {info.backend}")
    print(f"mpp:        {info.mpp[0]:.4f} x {info.mpp[1]:.4f}" if info.mpp else "mpp:        unknown")
    print(f"objective:  {info.objective_power:g}x" if info.objective_power else "objective:  unknown")
    for level, ((width, height), downsample) in enumerate(
        zip(info.level_dimensions, info.level_downsamples, strict=True)
    ):
        print(f"level {level}:    {width} x {height}  (downsample {downsample:.3f})")
    return 0


def _id_file(value: str) -> str:
    """hi-ml's id-list file as this plugin's ``@FILE`` id list."""
    return f"@{value}"


class CpathCommand:
    """``himl cpath SUBCOMMAND``."""

    def configure(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="cpath_command", metavar="SUBCOMMAND", required=True)

        tile = sub.add_parser("tile", help="cut slides into a tiles dataset (images + dataset.csv)")
        _add_slide_source(tile)
        tile.add_argument(
            "--output",
            type=Path,
            default=None,
            help="the tiles dataset folder, resumed if it exists (default inside a job: its outputs/tiles)",
        )
        tile.add_argument("--tile-size", type=int, default=224, help="tile side in pixels of --level (default: 224)")
        tile.add_argument("--level", type=int, default=0, help="pyramid level the tiles are read from (default: 0)")
        tile.add_argument("--overlap", type=int, default=0, help="pixels (of --level) that neighbouring tiles share")
        tile.add_argument(
            "--min-occupancy", type=float, default=0.5, help="share of tissue a tile needs to be kept (default: 0.5)"
        )
        tile.add_argument(
            "--mask-level",
            type=int,
            default=-1,
            help="level the Otsu tissue mask is computed on (default: -1, the lowest)",
        )
        tile.add_argument(
            "--format",
            choices=("png", "jpeg"),
            default="png",
            help="tile image format: png is lossless, jpeg smaller and lossy (default: png)",
        )
        tile.add_argument("--jpeg-quality", type=int, default=90, help="quality of jpeg tiles, 1-100 (default: 90)")
        tile.add_argument(
            "--png-level",
            type=int,
            default=1,
            help="zlib level of PNG tiles, 0-9; lossless at every level, 1 is fast (default: 1)",
        )
        tile.add_argument("--overwrite", action="store_true", help="start over instead of resuming")
        tile.set_defaults(handler=_tile)

        montage = sub.add_parser(
            "montage",
            help="one picture of many slides: montage.png and montage.jpg",
            description="One picture of many slides. hi-ml's create_montage.py flags are accepted too: --dataset, "
            "--image_glob_pattern, --output_path, --include_by_slide_id, --exclude_by_slide_id, --parallel.",
        )
        _add_slide_source(montage, optional=True)
        montage.add_argument(
            "--output",
            "--output_path",
            type=Path,
            default=None,
            help="folder for montage.png/.jpg (default: the job's outputs, or .)",
        )
        montage.add_argument(
            "--level", type=int, default=-1, help="pyramid level to read; negative counts from the lowest (default: -1)"
        )
        montage.add_argument("--width", type=int, default=1000, help="montage width in pixels (default: 1000)")
        hi_ml = montage.add_argument_group("hi-ml's create_montage.py spellings")
        hi_ml.add_argument(
            "--dataset",
            type=Path,
            default=None,
            help="the slides: a folder (read through its dataset.csv "
            "when it has one and no pattern is given) or a dataset.csv",
        )
        hi_ml.add_argument("--image_glob_pattern", dest="glob", help="as --glob")
        hi_ml.add_argument(
            "--include_by_slide_id",
            dest="include",
            action="append",
            type=_id_file,
            metavar="FILE",
            help="a file of slide ids, one a line, to show only",
        )
        hi_ml.add_argument(
            "--exclude_by_slide_id",
            dest="exclude",
            action="append",
            type=_id_file,
            metavar="FILE",
            help="a file of slide ids, one a line, to leave out",
        )
        hi_ml.add_argument("--parallel", dest="processes", type=int, help="as --processes")
        for dest, flag in _AZURE_FLAGS.items():
            hi_ml.add_argument(flag, dest=f"azure_{dest}", default=None, help="refused: use himl submit (see above)")
        montage.set_defaults(handler=_montage)

        dsa = sub.add_parser("dsa-upload", help="upload tile attention as annotations to a Digital Slide Archive")
        dsa.add_argument("table", type=Path, help="per-tile CSV: slide_id, tile_x/left, tile_y/top, attention/bag_attn")
        dsa.add_argument("--folder-id", default=None, help="look for the slides' items in this DSA folder")
        dsa.add_argument(
            "--tile-size", type=int, default=None, help="tile side in level-0 pixels, without right/bottom"
        )
        dsa.add_argument("--name", default="attention", help="annotation name (default: attention)")
        dsa.add_argument("--dsa-url", default=None, help="the DSA's API address (default: $DSA_URL)")
        dsa.set_defaults(handler=_dsa_upload)

        export = sub.add_parser(
            "export-annotations", help="tile attention as GeoJSON that QuPath imports, one file per slide"
        )
        export.add_argument(
            "table", type=Path, help="per-tile CSV: slide_id, tile_x/left, tile_y/top, attention/bag_attn"
        )
        export.add_argument(
            "--output",
            type=Path,
            default=None,
            help="folder for the .geojson files (default: annotations/ beside it)",
        )
        export.add_argument(
            "--tile-size", type=int, default=None, help="tile side in level-0 pixels, without right/bottom"
        )
        export.set_defaults(handler=_export_annotations)

        figures = sub.add_parser(
            "figures", help="ROC/PR curves and attention tiles and heatmaps from a DeepMIL test_output.csv"
        )
        figures.add_argument("table", type=Path, help="the test_output.csv of a DeepMIL run")
        figures.add_argument(
            "--slides", type=Path, default=None, help="the slides (folder or dataset.csv), for tiles and heatmaps"
        )
        figures.add_argument(
            "--tiles-root", type=Path, default=None, help="folder the table's image column is relative to"
        )
        figures.add_argument("--output", type=Path, default=None, help="where to write (default: the table's folder)")
        figures.add_argument("--tile-size", type=int, default=224, help="tile side in pixels of --tile-level")
        figures.add_argument("--tile-level", type=int, default=0, help="pyramid level the tiles were cut at")
        figures.add_argument("--top-k", type=int, default=12, help="tiles in each top and bottom figure")
        figures.add_argument(
            "--max-slides", type=int, default=0, help="attention figures for at most this many slides (default: all)"
        )
        figures.add_argument(
            "--per-slide-scale",
            action="store_true",
            help="colour each heatmap over its own attention range (default: one scale for all slides)",
        )
        figures.add_argument("--backend", default="auto", help="slide reader (default: auto)")
        figures.set_defaults(handler=_figures)

        info = sub.add_parser("info", help="levels, sizes, microns per pixel and magnification of a slide")
        info.add_argument("slide", type=Path)
        info.add_argument("--backend", default="auto", help="slide reader (default: auto)")
        info.set_defaults(handler=_info)

    def run(self, args: argparse.Namespace, host: PluginHost) -> int:
        return int(args.handler(args, host))


command = CpathCommand()
