"""Feature-cache fill against the encoder's own speed: encoded tiles per second, streamed from slides or from memory.

Run with the interpreter of the environment that has himl-cpath installed:

    python bench/bench_encode.py [--slides 4] [--tile 128] [--encoder resnet18] [--workers 2] [--rounds 3]

``--slides`` synthetic Aperio-style slides (3200 x 2400 pixels) are written
to a temporary folder. A frozen encoder with random weights (seed 0) then
turns every kept tile (``--tile`` pixels at level 0, at least half tissue)
into a feature vector, two ways, in the same process:

- cache fill: DeepMIL's ``cache_features`` into an empty cache folder, with
  ``--workers`` loader processes planning the slides and reading and decoding
  the tiles while the encoder runs; the time covers the tissue masks, the
  reading, the encoding and the writing of the cache entries;
- the limit: the same encoder's forward pass over the same tiles, in the same
  batches, already decoded in memory (nothing read, nothing written).

Each round runs both (one untimed warm-up of each first), alternating; the
table gives best and median encoded tiles per second, and the ratio of the
medians, cache fill / limit (goal: at least 0.9 with 2 workers). The cache
fill with the tiles read in this process (0 workers) is printed for
reference. The load average is printed: on a shared machine the other work
takes CPU from both sides. It always exits 0: compare numbers only between
runs on the same machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GOAL = 0.9
WIDTH, HEIGHT = 3200, 2400
BATCH = 64


def in_memory_batches(records: list[Any], options: Any) -> list[Any]:
    """The tiles of ``records`` decoded, in the batches the cache fill encodes them in."""
    from himl_cpath.feature_stream import plan_bags, read_chunks

    plans, failures = plan_bags(records, options, batch_size=BATCH, workers=0, backend=None)
    assert not failures, failures
    return [chunk.pixels for chunk in read_chunks(records, plans, options, workers=0, backend=None)]


def limit_rate(encoder: Any, batches: list[Any]) -> float:
    """Tiles per second of the bare forward pass over ``batches``."""
    import torch

    start = time.perf_counter()
    with torch.no_grad():
        for batch in batches:
            encoder(batch)
    return sum(len(b) for b in batches) / (time.perf_counter() - start)


def fill_rate(records: list[Any], encoder: Any, options: Any, cache: Path, workers: int) -> tuple[float, int]:
    """Tiles per second of filling an empty feature cache, and the tiles encoded."""
    from himl_cpath.feature_cache import cache_features, load_features

    shutil.rmtree(cache, ignore_errors=True)
    start = time.perf_counter()
    folder, count = cache_features(records, encoder, options, cache, batch_size=BATCH, workers=workers)
    took = time.perf_counter() - start
    assert count == len(records)
    tiles = sum(len(load_features(folder, r.slide_id).features) for r in records)
    return tiles / took, tiles


def main() -> int:
    from himl_cpath.encoders import ENCODERS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slides", type=int, default=4, help="synthetic slides (default 4)")
    parser.add_argument("--tile", type=int, default=128, help="tile side in pixels (default 128)")
    parser.add_argument("--encoder", choices=list(ENCODERS), default="resnet18", help="tile encoder (default resnet18)")
    parser.add_argument("--workers", type=int, default=2, help="loader processes of the cache fill (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each side (default 3)")
    args = parser.parse_args()

    import torch
    from himl_cpath.encoders import create_encoder
    from himl_cpath.slide_table import SlideRecord
    from himl_cpath.synthetic import write_synthetic_slide
    from himl_cpath.tiling import TilingOptions

    options = TilingOptions(tile_size=args.tile, min_occupancy=0.5)
    encoder = create_encoder(args.encoder)
    with tempfile.TemporaryDirectory(prefix="himl-bench-encode-") as scratch:
        root = Path(scratch)
        records = [
            SlideRecord(f"slide_{i}", write_synthetic_slide(root / f"slide_{i}.svs", WIDTH, HEIGHT, seed=i).path)
            for i in range(args.slides)
        ]
        batches = in_memory_batches(records, options)
        tiles = sum(len(b) for b in batches)
        print(
            f"{args.slides} slides {WIDTH} x {HEIGHT}, {tiles} tiles of {args.tile} px, {args.encoder}, "
            f"batches of {BATCH}, {torch.get_num_threads()} torch threads, {args.workers} loader workers"
        )
        limit_rate(encoder, batches[:2])  # warm-up
        fill_rate(records[:1], encoder, options, root / "cache", args.workers)
        limits, fills = [], []
        for _ in range(args.rounds):
            limits.append(limit_rate(encoder, batches))
            rate, encoded = fill_rate(records, encoder, options, root / "cache", args.workers)
            assert encoded == tiles, (encoded, tiles)
            fills.append(rate)
        serial, _ = fill_rate(records, encoder, options, root / "cache", 0)

    print(f"load average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(f"{'side':<44} {'best tiles/s':>12} {'median tiles/s':>15}")
    print(f"{'limit: forward pass over tiles in memory':<44} {max(limits):12.1f} {statistics.median(limits):15.1f}")
    label = f"cache fill, {args.workers} loader workers"
    print(f"{label:<44} {max(fills):12.1f} {statistics.median(fills):15.1f}")
    print(f"{'cache fill, read in this process (reference)':<44} {serial:12.1f} {'(one run)':>15}")
    rounds = ", ".join(f"{limit:.1f}/{fill:.1f}" for limit, fill in zip(limits, fills, strict=True))
    print(f"rounds, limit/cache fill tiles/s: {rounds}")
    ratio = statistics.median(fills) / statistics.median(limits)
    verdict = "met" if ratio >= GOAL else "MISSED"
    print(f"cache fill / limit (medians): {ratio:.3f}  goal >= {GOAL}: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
