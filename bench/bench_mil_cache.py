"""DeepMIL epoch time with cached tile features against re-encoding the tiles every epoch.

Run with the interpreter of the environment that has himl-cpath installed:

    python bench/bench_mil_cache.py [--slides 8] [--epochs 3] [--encoder resnet18]

``--slides`` synthetic Aperio-style slides (3200 x 2400 pixels, half of them
positive) are written to a temporary folder and cut into 224-pixel tiles at
level 0 (at least half tissue), and a frozen encoder with random weights
(seed 0) turns each tile into a feature vector. Both sides train the same
``DeepMILModule`` (attention pooling, two classes, batches of 4 slides,
shuffled) for one epoch under a plain Lightning ``Trainer.fit``:

- cached: the features are computed once into the feature cache
  (``cache_features``; its one-off cost is printed) and each epoch reads
  ``FeatureBags``, so the module holds no encoder;
- re-encoding (the baseline): ``ImageBags`` cut the tiles from the slides
  every epoch and the module runs the frozen encoder over them every epoch,
  as a MIL loop without a cache does. The tile plans (tissue mask, kept
  tiles) are computed once and kept, so only the reading and encoding repeat.

Each side gets one untimed warm-up epoch, then ``--epochs`` timed epochs,
alternating the two, each with a fresh module and a fresh Trainer; the
table gives best and median seconds per epoch and the ratio of the medians
(goal: re-encoding at least 10 times the cached epoch). It always exits 0:
compare numbers only between runs on the same machine.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

GOAL = 10.0
WIDTH, HEIGHT = 3200, 2400
BATCH_SIZE = 4


def epoch_seconds(module: Any, dataset: Any) -> float:
    """Wall seconds of one ``Trainer.fit`` epoch of ``module`` over ``dataset``."""
    from himl_cpath.deepmil_data import collate_bags
    from lightning.pytorch import Trainer
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True, collate_fn=collate_bags)
    trainer = Trainer(
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    start = time.perf_counter()
    trainer.fit(module, train_dataloaders=loader)
    return time.perf_counter() - start


def main() -> int:
    from himl_cpath.encoders import ENCODERS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slides", type=int, default=8, help="synthetic slides, half positive (default 8)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs of each side (default 3)")
    parser.add_argument("--encoder", choices=list(ENCODERS), default="resnet18", help="tile encoder (default resnet18)")
    args = parser.parse_args()

    import torch
    from himl_cpath.deepmil import DeepMILModule
    from himl_cpath.deepmil_data import FeatureBags, ImageBags, LabelledSlide
    from himl_cpath.encoders import create_encoder
    from himl_cpath.feature_cache import cache_features
    from himl_cpath.slide_table import SlideRecord
    from himl_cpath.synthetic import write_synthetic_slide
    from himl_cpath.tiling import TilingOptions

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*`validation_step` but have no `val_dataloader`.*")
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")  # the frozen encoder
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")

    options = TilingOptions(224, 0, 0, 0.5)
    encoder = create_encoder(args.encoder, frozen=True, seed=0)
    times: dict[str, list[float]] = {"re-encoding": [], "cached": []}
    with tempfile.TemporaryDirectory(prefix="himl-bench-mil-") as scratch:
        root = Path(scratch)
        start = time.perf_counter()
        records = []
        for index in range(args.slides):
            slide = write_synthetic_slide(
                root / f"mil_{index:02d}.svs", WIDTH, HEIGHT, seed=200 + index, positive=index % 2 == 1
            )
            records.append(SlideRecord(slide.path.stem, slide.path, str(slide.label)))
        slides = [LabelledSlide(record, int(record.label)) for record in records]
        print(f"{args.slides} slides {WIDTH} x {HEIGHT} written in {time.perf_counter() - start:.1f} s")

        start = time.perf_counter()
        folder, count = cache_features(records, encoder, options, root / "cache")
        took = time.perf_counter() - start
        cached = FeatureBags(folder, slides)
        tiles = sum(len(bag.features) for bag in cached.bags)
        print(
            f"feature cache filled once: {count} slides, {tiles} tiles, {args.encoder}, in {took:.2f} s "
            f"({tiles / took:.1f} tiles/s)"
        )
        images = ImageBags(slides, options)

        def run(label: str) -> float:
            torch.manual_seed(0)
            if label == "cached":
                module = DeepMILModule(
                    num_classes=2, feature_dim=encoder.num_features, pooling="attention", encoder=None
                )
                return epoch_seconds(module, cached)
            module = DeepMILModule(
                num_classes=2, feature_dim=encoder.num_features, pooling="attention", encoder=encoder
            )
            return epoch_seconds(module, images)

        for index in range(args.epochs + 1):  # the first round is an untimed warm-up
            for label in times:
                seconds = run(label)
                if index > 0:
                    times[label].append(seconds)

    print(f"DeepMIL epoch, {args.slides} slides, {tiles} tiles, batch {BATCH_SIZE}, {args.epochs} epochs each")
    print(f"{'side':<12} {'best s':>8} {'median s':>9}")
    for label, values in times.items():
        print(f"{label:<12} {min(values):>8.3f} {statistics.median(values):>9.3f}")
    ratio = statistics.median(times["re-encoding"]) / statistics.median(times["cached"])
    verdict = "met" if ratio >= GOAL else "MISSED"
    print(f"re-encoding / cached (medians): {ratio:.1f}x  goal >= {GOAL:g}x: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
