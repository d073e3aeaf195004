"""A plain PyTorch training loop (no Lightning) that takes from himl:

- its dataset folder (``run_info.input_datasets[0]``),
- its starting checkpoint (``resolve_checkpoint``: a path, a URL, or RUN_ID:path),
- its metric logging (``log_metrics``, into the run's MLflow run),
- and where to keep its outputs (``run_info.output_folder``).

    himl submit examples/plain_pytorch.py -- --data DATA_FOLDER --epochs 5
    himl submit examples/plain_pytorch.py -- --data DATA_FOLDER --checkpoint RUN_ID:checkpoints/last.pt

DATA_FOLDER holds ``data.csv`` with columns x and y; ``--make-data`` writes one.
"""

import argparse
import csv
import random
from pathlib import Path

import torch

from himl_kernel import DatasetConfig, log_metrics, resolve_checkpoint, submit_if_needed


def make_data(folder: Path, rows: int = 256, seed: int = 0) -> None:
    """y = 3 x - 2 with a little noise."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with open(folder / "data.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x", "y"])
        for _ in range(rows):
            x = rng.uniform(-1, 1)
            writer.writerow([x, 3 * x - 2 + rng.gauss(0, 0.05)])


def load_data(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    with open(folder / "data.csv", encoding="utf-8") as handle:
        rows = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(handle)]
    data = torch.tensor(rows, dtype=torch.float32)
    return data[:, :1], data[:, 1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder holding data.csv")
    parser.add_argument("--make-data", action="store_true", help="write a toy data.csv into --data first")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--checkpoint", default="", help="start from this checkpoint (path, URL or RUN_ID:path)")
    args, _ = parser.parse_known_args()
    if args.make_data:
        make_data(args.data)

    run_info = submit_if_needed(input_datasets=[DatasetConfig(name="toy_regression", local_folder=args.data)])
    x, y = load_data(run_info.input_datasets[0])

    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    first_epoch = 0
    if args.checkpoint:
        state = torch.load(resolve_checkpoint(args.checkpoint), map_location="cpu")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        first_epoch = state["epoch"] + 1
        print(f"plain_pytorch: resumed from {args.checkpoint} at epoch {first_epoch}")

    loss_fn = torch.nn.MSELoss()
    for epoch in range(first_epoch, first_epoch + args.epochs):
        for batch in torch.randperm(len(x)).split(32):
            optimizer.zero_grad()
            loss = loss_fn(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            full_loss = loss_fn(model(x), y).item()
        log_metrics({"train/loss": full_loss}, step=epoch)
        print(f"plain_pytorch: epoch {epoch} loss {full_loss:.5f}")

    checkpoints = run_info.output_folder / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}
    torch.save(state, checkpoints / "last.pt")
    print(f"plain_pytorch: saved {checkpoints / 'last.pt'}")


if __name__ == "__main__":
    main()
