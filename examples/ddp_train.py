"""Data-parallel training with a momentopt optimizer on the CPU (gloo backend).

Run on one machine with two processes:

    torchrun --standalone --nproc-per-node 2 examples/ddp_train.py --optimizer AdamW

Each process trains the same small regression model on its half of every batch;
DistributedDataParallel averages the gradients, and the momentopt optimizer steps exactly as
torch.optim's would. ``--zero`` shards the optimizer state across the processes with
``torch.distributed.optim.ZeroRedundancyOptimizer``. At the end every rank checks that its
weights equal rank 0's, and rank 0 saves a checkpoint (``--save PATH``).
"""

from __future__ import annotations

import argparse
import gc

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

import momentopt

OPTIMIZERS = {
    "SGD": (momentopt.SGD, {"lr": 0.05, "momentum": 0.9}),
    "Adagrad": (momentopt.Adagrad, {"lr": 0.05}),
    "Adadelta": (momentopt.Adadelta, {"lr": 1.0}),
    "RMSprop": (momentopt.RMSprop, {"lr": 1e-2}),
    "Adam": (momentopt.Adam, {"lr": 1e-2}),
    "AdamW": (momentopt.AdamW, {"lr": 1e-2, "weight_decay": 1e-2}),
    "NAdam": (momentopt.NAdam, {"lr": 1e-2}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="AdamW")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--zero", action="store_true", help="shard the optimizer state (ZeRO-1)")
    parser.add_argument("--save", default=None, help="where rank 0 saves model and optimizer")
    args = parser.parse_args()

    dist.init_process_group("gloo")  # torchrun sets RANK, WORLD_SIZE, MASTER_ADDR/PORT
    try:
        train(args)
        # Release everything that holds the process group or its pending work (DDP's
        # reducer sits in reference cycles) while the interpreter is fully alive: freed
        # during interpreter shutdown instead, a gloo thread can take the GIL too late, and
        # the process aborts ("terminate called without an active exception").
        gc.collect()
        dist.barrier()  # no rank tears its connections down while another still uses them
    finally:
        dist.destroy_process_group()


def train(args: argparse.Namespace) -> None:
    """Train, check the replicas agree, and save on rank 0 (every object made here is freed
    on return, before the process group is destroyed)."""
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 10, generator=g)
    y = x @ torch.randn(10, 1, generator=g) + 0.1 * torch.randn(256, 1, generator=g)
    sampler = DistributedSampler(TensorDataset(x, y), num_replicas=world, rank=rank, seed=0)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, sampler=sampler)

    torch.manual_seed(0)  # the same initial weights on every rank (DDP also broadcasts them)
    model = DDP(nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1)))
    cls, kwargs = OPTIMIZERS[args.optimizer]
    if args.zero:
        from torch.distributed.optim import ZeroRedundancyOptimizer

        opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=cls, **kwargs)
    else:
        opt = cls(model.parameters(), **kwargs)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * len(loader))

    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        for xb, yb in loader:
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(xb), yb)
            loss.backward()
            opt.step()
            sched.step()
        total = loss.detach().clone()
        dist.all_reduce(total)
        if rank == 0:
            print(f"epoch {epoch}: loss {total.item() / world:.4f}", flush=True)

    for p in model.parameters():  # DDP keeps the replicas identical
        reference = p.detach().clone()
        dist.broadcast(reference, src=0)
        assert torch.equal(reference, p.detach()), "replicas diverged"
    if args.zero:
        opt.consolidate_state_dict(to=0)
    if rank == 0:
        if args.save:
            torch.save({"model": model.module.state_dict(), "optimizer": opt.state_dict()}, args.save)
        print(f"done: {world} processes, {args.optimizer}, replicas identical", flush=True)


if __name__ == "__main__":
    main()
