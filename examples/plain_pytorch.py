"""A plain PyTorch training loop (no Lightning) that takes from himl:

- its dataset folder (``run_info.input_datasets[0]``),
- the training state to start from (``resolve_checkpoint``: a path, a URL, or RUN_ID:path),
- its metric logging (``log_metrics``, into the run's MLflow run: each
  (metric, step) once, from global rank zero only),
- recovery from a killed process (``load_recovery_checkpoint`` /
  ``save_recovery_checkpoint``, in the run's recovery folder),
- and where to keep its outputs (``run_info.output_folder``).

    himl submit examples/plain_pytorch.py -- --data DATA_FOLDER --make-data --epochs 5
    himl submit examples/plain_pytorch.py -- --data DATA_FOLDER --epochs 3 --checkpoint RUN_ID:checkpoints/last.pt

The second trains 3 more epochs, carrying on from the first run's last state.

Kill it (or lose the machine) and run the same command again: the local
backend carries on the same run, the loop starts after the last epoch it
saved, and the metrics of the epochs it trains again are not logged twice.
The data order of each epoch depends only on the seed and the epoch, so the
final weights are those of a run that was never interrupted.

DATA_FOLDER holds ``data.csv`` with columns x and y; ``--make-data`` writes one
if it is not there.
"""

import argparse
import csv
import io
import random
from pathlib import Path

import torch

from himl_kernel import (
    DatasetConfig,
    atomic_write,
    load_recovery_checkpoint,
    log_metrics,
    ranks,
    resolve_checkpoint,
    save_recovery_checkpoint,
    submit_if_needed,
)
from himl_kernel.atomic import atomic_write_text

LAST_CHECKPOINT = "last.pt"


def make_data(folder: Path, rows: int, seed: int = 0) -> None:
    """y = 3 x - 2 with a little noise, written once (atomically, so a kill never leaves half a file)."""
    target = folder / "data.csv"
    if target.is_file():
        return
    rng = random.Random(seed)
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["x", "y"])
    for _ in range(rows):
        x = rng.uniform(-1, 1)
        writer.writerow([repr(x), repr(3 * x - 2 + rng.gauss(0, 0.05))])
    atomic_write_text(target, text.getvalue())


def load_data(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    with open(folder / "data.csv", encoding="utf-8") as handle:
        rows = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(handle)]
    data = torch.tensor(rows, dtype=torch.float32)
    return data[:, :1], data[:, 1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder holding data.csv")
    parser.add_argument("--make-data", action="store_true", help="write a toy data.csv into --data if it has none")
    parser.add_argument("--rows", type=int, default=256, help="rows of the toy data")
    parser.add_argument("--epochs", type=int, default=5, help="epochs to train (after --checkpoint's, if given)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=20, help="log the batch loss every N steps")
    parser.add_argument("--checkpoint", default="", help="carry on from this last.pt (path, URL or RUN_ID:path)")
    args, _ = parser.parse_known_args()
    if args.make_data and ranks().is_local_zero:
        make_data(args.data, args.rows)

    run_info = submit_if_needed(input_datasets=[DatasetConfig(name="toy_regression", local_folder=args.data)])
    data_folder = run_info.input_datasets[0]
    assert data_folder is not None
    x, y = load_data(data_folder)

    torch.manual_seed(args.seed)
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    start = None
    if args.checkpoint:
        start = torch.load(resolve_checkpoint(args.checkpoint), map_location="cpu", weights_only=True)
    base_epoch = start["epoch"] + 1 if start is not None else 0
    end_epoch = base_epoch + args.epochs  # the same in every rerun of this command
    first_epoch = base_epoch
    resumed = load_recovery_checkpoint(run_info)
    if resumed is not None:  # an earlier attempt of this run was killed: carry on where it saved
        epoch, state = resumed
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        first_epoch = epoch + 1
        print(f"plain_pytorch: resumed from the recovery checkpoint of epoch {epoch}", flush=True)
    elif start is not None:
        model.load_state_dict(start["model"])
        optimizer.load_state_dict(start["optimizer"])
        print(f"plain_pytorch: resumed from {args.checkpoint} at epoch {base_epoch}", flush=True)
    print(f"plain_pytorch: training epochs {first_epoch} to {end_epoch - 1}", flush=True)

    loss_fn = torch.nn.MSELoss()
    steps_per_epoch = (len(x) + args.batch_size - 1) // args.batch_size
    for epoch in range(first_epoch, end_epoch):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(args.seed * 100_003 + epoch))
        for index, batch in enumerate(order.split(args.batch_size)):
            optimizer.zero_grad()
            loss = loss_fn(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            step = epoch * steps_per_epoch + index
            if step % args.log_every == 0:
                log_metrics({"train/batch_loss": loss.item()}, step=step)
        with torch.no_grad():
            full_loss = loss_fn(model(x), y).item()
        # The epoch's metrics first, then its checkpoint: a kill in between trains the
        # epoch again, and log_metrics drops what the run already holds.
        log_metrics({"train/loss": full_loss, "epoch": epoch}, step=epoch)
        save_recovery_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, epoch, run_info)
        print(f"plain_pytorch: epoch {epoch} loss {full_loss:.6f}", flush=True)

    if ranks().is_global_zero:
        target = run_info.output_folder / "checkpoints" / LAST_CHECKPOINT
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": end_epoch - 1}
        atomic_write(target, lambda handle: torch.save(state, handle))
        print(f"plain_pytorch: saved {target}", flush=True)


if __name__ == "__main__":
    main()
