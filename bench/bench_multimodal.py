"""Images embedded per second through ``get_image_inference``, against the bare model forward, in one process.

Run with the interpreter of an environment that has himl-multimodal installed:

    python bench/bench_multimodal.py [--images 8] [--model biovil] [--backbone resnet50] [--runs 3]

A random-init image model of the published size is saved to a temporary ``.pt`` and loaded through
``get_image_inference``; ``--images`` greyscale PNGs (600 x 512) are written beside it. Timed, best of ``--runs``:
``engine.get_projected_global_embedding(path)`` for every image (reading, preprocessing, forward, normalising)
and the baseline, the same model's forward on the already preprocessed tensors, one image per call.
Goal: at least 0.9 (the engine's rate over the baseline's). The script reports and always exits 0.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

GOAL_RATIO = 0.9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--model", choices=("biovil", "biovil_t"), default="biovil")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import numpy as np
    import torch
    from himl_multimodal.image import ImageModel, get_image_inference
    from PIL import Image

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        torch.manual_seed(0)
        model = ImageModel(args.backbone, 128, multi_image=args.model == "biovil_t")
        torch.save(model.state_dict(), folder / "weights.pt")
        rng = np.random.default_rng(0)
        paths = []
        for index in range(args.images):
            path = folder / f"cxr{index}.png"
            Image.fromarray(rng.integers(0, 256, (512, 600), dtype=np.uint8), mode="L").save(path)
            paths.append(path)
        engine = get_image_inference(args.model, folder / "weights.pt", backbone=args.backbone)
        tensors = [engine.load_and_transform_input_image(p)[0] for p in paths]
        bare = engine.model

        def through_engine() -> None:
            for path in paths:
                engine.get_projected_global_embedding(path)

        def bare_forward() -> None:
            with torch.no_grad():
                for tensor in tensors:
                    bare(tensor)

        bare_forward()  # warm-up: first calls allocate
        timings = {"get_image_inference": [], "bare forward": []}
        for _ in range(args.runs):
            for name, call in (("get_image_inference", through_engine), ("bare forward", bare_forward)):
                start = time.perf_counter()
                call()
                timings[name].append(time.perf_counter() - start)
    rates = {name: args.images / min(times) for name, times in timings.items()}
    for name, rate in rates.items():
        print(f"{name:>20}: {rate:7.2f} images/s (best of {args.runs})")
    ratio = rates["get_image_inference"] / rates["bare forward"]
    verdict = "meets" if ratio >= GOAL_RATIO else "misses"
    print(f"ratio get_image_inference / bare forward: {ratio:.3f} ({verdict} the goal of {GOAL_RATIO})")


if __name__ == "__main__":
    main()
