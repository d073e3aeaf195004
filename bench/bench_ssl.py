"""SimCLR training steps per second: the SSL container's module and data under Lightning against a bare PyTorch loop.

Run with the interpreter of the environment that has himl-ssl installed:

    python bench/bench_ssl.py [--steps 20] [--batch 64] [--size 32] [--encoder cifar_resnet18]

Both sides train the same thing in this one process: :class:`SSLModule`
(SimCLR: the encoder, projection head, NT-Xent, batch augmentations, and the
online linear head on its own labelled batches) over the loaders of
:class:`SSLDataModule` reading a synthetic image folder (random PNGs written
to a temporary folder, two classes):

- himl: ``Trainer.fit`` of the module and data module, as ``himl run --model
  SSLContainer`` builds them (no checkpoints, logger or progress bar, so the
  comparison is of the training loop itself);
- bare (the baseline): a plain loop over the same two loaders calling
  ``training_step`` and Adam over the same parameter groups.

Each side gets an untimed warm-up of 3 steps, then ``--steps`` timed steps,
alternating the two ``--rounds`` times with fresh modules; it prints the median
steps per second of each and the ratio himl / bare (goal: at least 0.9). It
always exits 0: compare numbers only between runs on the same machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

GOAL = 0.9
WARMUP = 3


def write_folder(root: Path, count: int, size: int) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for index in range(count):
        target = root / f"class{index % 2}"
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(target / f"{index}.png")
    return root


def parts(folder: Path, args: argparse.Namespace) -> tuple[Any, Any]:
    from himl_ssl.data import ImageDataset, find_images
    from himl_ssl.datamodule import SSLDataModule
    from himl_ssl.module import SSLModule

    train = ImageDataset(find_images(folder, "ImageFolder", "train"), args.size)
    val = ImageDataset(find_images(folder, "ImageFolder", "val"), args.size)
    module = SSLModule(
        args.encoder, "SimCLR", num_classes=2, image_size=args.size, learning_rate=1e-3, weight_decay=0.0,
        linear_head_learning_rate=1e-4, warmup_epochs=0, hidden_dim=512,
    )  # fmt: skip
    data = SSLDataModule(train, val, train, val, ssl_batch_size=args.batch, head_batch_size=args.batch)
    return module, data


def lightning_rate(folder: Path, args: argparse.Namespace) -> float:
    """Steps per second of ``Trainer.fit`` after the warm-up steps (timed by a callback)."""
    from lightning.pytorch import Callback, Trainer

    module, data = parts(folder, args)
    marks: list[float] = []

    class Clock(Callback):
        def on_train_batch_end(self, *unused: Any) -> None:
            marks.append(time.perf_counter())

    trainer = Trainer(
        max_steps=WARMUP + args.steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        callbacks=[Clock()],
    )  # fmt: skip
    trainer.fit(module, datamodule=data)
    return args.steps / (marks[-1] - marks[WARMUP - 1])


def bare_rate(folder: Path, args: argparse.Namespace) -> float:
    """Steps per second of a plain loop over the same loaders, steps and optimizer."""
    import torch

    module, data = parts(folder, args)
    loaders = data.train_dataloader()
    ssl_params = [p for n, p in module.named_parameters() if not n.startswith("linear_head.")]
    optimizer = torch.optim.Adam(
        [{"params": ssl_params, "lr": 1e-3}, {"params": list(module.linear_head.parameters()), "lr": 1e-4}]
    )
    module.train()
    start = 0.0
    step = 0
    while step < WARMUP + args.steps:
        for ssl_batch, head_batch in zip(loaders["ssl"], loaders["linear_head"], strict=False):
            if step == WARMUP:
                start = time.perf_counter()
            loss = module.ssl_loss(ssl_batch[0]) + module.linear_head_loss(*head_batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step == WARMUP + args.steps:
                break
    return args.steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--encoder", default="cifar_resnet18")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_folder(Path(tmp), args.batch * 4, args.size)
        himl, bare = [], []
        for _ in range(args.rounds):
            bare.append(bare_rate(folder, args))
            himl.append(lightning_rate(folder, args))
    himl_median, bare_median = statistics.median(himl), statistics.median(bare)
    ratio = himl_median / bare_median
    print(f"SimCLR {args.encoder}, batch {args.batch} of {args.size} px, {args.steps} steps x {args.rounds} rounds")
    print(f"  himl (Trainer.fit of SSLModule/SSLDataModule): {himl_median:.3f} steps/s")
    print(f"  bare PyTorch loop (baseline):                  {bare_median:.3f} steps/s")
    print(f"  ratio himl / bare: {ratio:.2f} (goal: at least {GOAL}) {'ok' if ratio >= GOAL else 'below the goal'}")


if __name__ == "__main__":
    main()
