"""PlainHelloWorld: the smallest real experiment, in plain Python (no torch).

It writes a noisy 1-D regression dataset as a CSV, fits y = w x + b by
mini-batch gradient descent, logs train and validation loss each epoch,
reports the test loss, and saves the fitted weights and the data to its
outputs. It supports cross-validation (``--crossval_count 3``): each fold
validates on a different part of the training data. The Lightning HelloWorld
(:mod:`himl_kernel.lightning.hello`) does the same with a LightningModule.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from himl_kernel.container import Container, CrossValidation
from himl_kernel.current import log_metrics

if TYPE_CHECKING:
    from himl_kernel.runinfo import RunInfo


def _mse(rows: list[tuple[float, float]], w: float, b: float) -> float:
    return sum((w * x + b - y) ** 2 for x, y in rows) / max(len(rows), 1)


class PlainHelloWorld(CrossValidation, Container):
    """Fit y = w x + b to noisy samples of y = 2 x + 1."""

    num_samples: int = Field(400, ge=20, description="rows in the generated CSV")
    max_epochs: int = Field(20, ge=1, description="passes over the training data")
    learning_rate: float = Field(0.05, gt=0, description="step size of gradient descent")
    batch_size: int = Field(16, ge=1, description="rows per gradient step")
    noise: float = Field(0.1, ge=0, description="standard deviation of the noise on y")
    random_seed: int = Field(42, description="seed of data generation and shuffling")

    def write_csv(self, path: Path) -> list[tuple[float, float]]:
        rng = random.Random(self.random_seed)
        rows = []
        for _ in range(self.num_samples):
            x = rng.uniform(-1.0, 1.0)
            rows.append((x, 2.0 * x + 1.0 + rng.gauss(0.0, self.noise)))
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["x", "y"])
            writer.writerows(rows)
        return rows

    def split(self, rows: list[tuple[float, float]]) -> tuple[list[tuple[float, float]], ...]:
        """70/15/15 train/val/test; with cross-validation, val is fold ``crossval_index`` of train+val."""
        n_test = len(rows) * 15 // 100
        test, rest = rows[:n_test], rows[n_test:]
        if self.crossval_count > 1 and self.crossval_index is not None:
            folds = [rest[i :: self.crossval_count] for i in range(self.crossval_count)]
            val = folds[self.crossval_index]
            train = [r for i, f in enumerate(folds) if i != self.crossval_index for r in f]
        else:
            n_val = len(rows) * 15 // 100
            val, train = rest[:n_val], rest[n_val:]
        return train, val, test

    def run(self, run_info: RunInfo) -> None:
        rows = self.write_csv(run_info.output_folder / "dataset.csv")
        train, val, test = self.split(rows)
        rng = random.Random(self.random_seed + 1000 * (self.crossval_index or 0))
        w = b = 0.0
        for epoch in range(self.max_epochs):
            rng.shuffle(train)
            for start in range(0, len(train), self.batch_size):
                batch = train[start : start + self.batch_size]
                grad_w = sum(2 * (w * x + b - y) * x for x, y in batch) / len(batch)
                grad_b = sum(2 * (w * x + b - y) for x, y in batch) / len(batch)
                w -= self.learning_rate * grad_w
                b -= self.learning_rate * grad_b
            log_metrics({"train/loss": _mse(train, w, b), "val/loss": _mse(val, w, b)}, step=epoch)
        test_loss = _mse(test, w, b)
        log_metrics({"test/loss": test_loss}, step=self.max_epochs)
        (run_info.output_folder / "model.json").write_text(
            json.dumps({"w": w, "b": b, "test_loss": test_loss}, indent=2), encoding="utf-8"
        )
        print(f"PlainHelloWorld: w={w:.3f} b={b:.3f} test loss={test_loss:.4f}")
