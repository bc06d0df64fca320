"""Start a small torch.distributed job (gloo over 127.0.0.1) from a test, with a hard timeout.

``run_distributed(fn, *args)`` starts ``world_size`` processes, each calling
``fn(rank, world_size, *args)`` inside an initialized gloo process group. An exception in any
rank fails the test with that rank's traceback; a job still running after ``timeout`` seconds
(a hang, e.g. one rank waiting in a collective the other never joins) has all its processes
killed and fails with ``TimeoutError`` — it never stalls CI.
"""

from __future__ import annotations

import datetime
import multiprocessing
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entry(
    rank: int,
    fn: Callable[..., None],
    world_size: int,
    port: int,
    collective_timeout: float,
    args: tuple[Any, ...],
) -> None:
    torch.set_num_threads(1)
    os.environ.pop("MOMENTOPT_EXECUTOR", None)  # the default choice is part of what is tested
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=collective_timeout),
    )
    try:
        fn(rank, world_size, *args)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    # Success: leave at once (interpreter teardown costs seconds); an exception above takes
    # torch.multiprocessing's path, which reports it to the parent.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


_PRELOAD = [
    "torch",
    "torch.distributed",
    "torch.nn.parallel",
    __name__.rpartition(".")[0] + ".dist_scenarios",
]


def _start_method() -> str:
    """ "forkserver" where there is one: a server process imports torch (and the scenarios)
    once, and every job's ranks fork from it in a fraction of a second instead of importing
    torch anew. The server runs no torch op before forking, so no thread pool is inherited."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return "spawn"
    multiprocessing.get_context("forkserver").set_forkserver_preload(_PRELOAD)
    return "forkserver"


def run_distributed(
    fn: Callable[..., None], *args: Any, world_size: int = 2, timeout: float = 90.0
) -> None:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` gloo ranks; fail on error or timeout."""
    port = free_port()
    context = mp.start_processes(
        _entry,
        args=(fn, world_size, port, max(10.0, timeout / 2), args),
        nprocs=world_size,
        join=False,
        start_method=_start_method(),
    )
    deadline = time.monotonic() + timeout
    try:
        while not context.join(timeout=1.0):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"distributed job {getattr(fn, '__name__', fn)} did not finish in {timeout:.0f} s "
                    "(a hang?); its processes were killed"
                )
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
        for process in context.processes:
            process.join(5)
