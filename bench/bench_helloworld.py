"""HelloWorld through ``himl run`` against the same LightningModule under a bare Trainer.

Run with the interpreter of the environment that has himl installed with Lightning:

    python bench/bench_helloworld.py [--runs 3] [--max_epochs 20]

Both sides are fresh processes that train and test HelloWorld's module, data
and optimizer for the same number of epochs:

- ``himl``: ``himl run --model HelloWorld`` (run store, MLflow metrics,
  TensorBoard, last/best/recovery checkpoints, timing callback);
- ``bare``: this script with ``--bare``: ``Trainer(...).fit`` then ``.test``
  with Lightning's defaults (its TensorBoard logger and last-epoch checkpoint).

The two series alternate, after one untimed warm-up run of each (the first
``himl run`` creates the run store); the table gives best and median wall times and the
ratio of the medians. The goal: himl at most 1.15 times the bare run. The
script reports and always exits 0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_RATIO = 1.15


def bare_run(max_epochs: int, folder: Path) -> None:
    """Train and test HelloWorld's module with a plain Trainer, nothing of himl's around it."""
    from lightning.pytorch import Trainer, seed_everything

    from himl_kernel.lightning.hello import HelloDataModule, HelloRegression, HelloWorld

    config = HelloWorld(max_epochs=max_epochs)
    seed_everything(config.random_seed, workers=True, verbose=False)
    data = HelloDataModule(
        folder / "dataset.csv",
        num_samples=config.num_samples,
        noise=config.noise,
        data_seed=config.data_seed,
        shuffle_seed=config.random_seed,
        batch_size=config.batch_size,
    )
    model = HelloRegression(config.create_optimizers)
    trainer = Trainer(max_epochs=max_epochs, accelerator="cpu", devices=1, default_root_dir=str(folder))
    trainer.fit(model, datamodule=data)
    results = trainer.test(model, datamodule=data, verbose=False)
    print(f"bare: test/loss={results[0]['test/loss']:.6g}")


def timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
        raise RuntimeError(f"{command[:4]} failed with exit code {done.returncode}:\n{tail}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each side (default 3)")
    parser.add_argument("--max_epochs", type=int, default=20, help="epochs each run trains (default 20)")
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        bare_run(args.max_epochs, Path.cwd())
        return 0

    himl = str(Path(sys.executable).with_name("himl"))
    times: dict[str, list[float]] = {"himl": [], "bare": []}
    with tempfile.TemporaryDirectory(prefix="himl-bench-") as tmp:
        root = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HIML_", "MLFLOW_"))}
        env["HIML_HOME"] = str(root / "home")
        commands = {
            "himl": [himl, "run", "--model", "HelloWorld", "--max_epochs", str(args.max_epochs)],
            "bare": [sys.executable, str(Path(__file__).resolve()), "--bare", "--max_epochs", str(args.max_epochs)],
        }
        for index in range(args.runs + 1):  # the first round is an untimed warm-up (it creates the run store)
            for label, command in commands.items():
                cwd = root / f"{label}{index}"
                cwd.mkdir()
                elapsed = timed(command, env, cwd)
                if index > 0:
                    times[label].append(elapsed)
    print(f"HelloWorld, {args.max_epochs} epochs, {args.runs} runs each (fresh processes, alternating)")
    print(f"{'side':<6} {'best s':>8} {'median s':>9}")
    for label, values in times.items():
        print(f"{label:<6} {min(values):>8.2f} {statistics.median(values):>9.2f}")
    ratio = statistics.median(times["himl"]) / statistics.median(times["bare"])
    verdict = "meets" if ratio <= GOAL_RATIO else "misses"
    print(f"ratio himl/bare (medians): {ratio:.3f}  ({verdict} the goal of at most {GOAL_RATIO})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
