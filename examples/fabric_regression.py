"""A training loop driven by Lightning Fabric, using the same himl services as plain_pytorch.py.

Fabric places the model and runs the processes (``--devices 2`` trains with
DDP on two CPU processes); himl gives the run, its recovery checkpoints and
its metric logging. Every process calls ``log_metrics``; only global rank
zero writes, and a rerun after a kill logs no (metric, step) twice.

    himl submit examples/fabric_regression.py -- --epochs 6 --devices 2

Run it through ``himl submit`` (or a cloud backend) when ``--devices`` is
above 1: the processes Fabric starts then join the same run.
"""

import argparse

import torch
from lightning.fabric import Fabric

from himl_kernel import (
    atomic_write,
    load_recovery_checkpoint,
    log_metrics,
    ranks,
    save_recovery_checkpoint,
    submit_if_needed,
)

MODEL_FILE = "model.pt"


def toy_data(rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """y = 2 x + 1 with a little noise, the same in every process."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(rows, 1, generator=generator) * 2 - 1
    return x, 2 * x + 1 + 0.05 * torch.randn(rows, 1, generator=generator)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--devices", type=int, default=1, help="processes (DDP on the CPU when above 1)")
    parser.add_argument("--rows", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args, _ = parser.parse_known_args()

    run_info = submit_if_needed()
    fabric = Fabric(accelerator="cpu", devices=args.devices, strategy="ddp" if args.devices > 1 else "auto")
    fabric.launch()
    rank, world = ranks().global_rank, ranks().world_size  # the kernel's view agrees with Fabric's
    assert (rank, world) == (fabric.global_rank, fabric.world_size), (rank, world)

    torch.manual_seed(args.seed)
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    first_epoch = 0
    resumed = load_recovery_checkpoint(run_info)
    if resumed is not None:
        epoch, state = resumed
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        first_epoch = epoch + 1
        fabric.print(f"fabric_regression: resumed from the recovery checkpoint of epoch {epoch}")
    model, optimizer = fabric.setup(model, optimizer)
    x, y = toy_data(args.rows, args.seed)
    loss_fn = torch.nn.MSELoss()

    for epoch in range(first_epoch, args.epochs):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(args.seed * 100_003 + epoch))
        mine = order[rank::world]  # each process its share of the epoch, in an order a rerun repeats
        for batch in mine.split(args.batch_size):
            optimizer.zero_grad()
            loss = loss_fn(model(x[batch]), y[batch])
            fabric.backward(loss)
            optimizer.step()
        with torch.no_grad():
            full_loss = float(fabric.all_reduce(loss_fn(model(x[mine]), y[mine]), reduce_op="mean"))
        log_metrics({"train/loss": full_loss, "epoch": epoch}, step=epoch)  # written by rank zero only
        save_recovery_checkpoint(
            {"model": model.state_dict(), "optimizer": optimizer.state_dict()}, epoch, run_info
        )  # likewise
        fabric.barrier()
        fabric.print(f"fabric_regression: epoch {epoch} loss {full_loss:.6f}")

    if fabric.is_global_zero:
        target = run_info.output_folder / MODEL_FILE
        atomic_write(target, lambda handle: torch.save({"model": model.state_dict()}, handle))
        fabric.print(f"fabric_regression: saved {target}")


if __name__ == "__main__":
    main()
