"""torch.distributed with momentopt: DDP, ZeroRedundancyOptimizer, FSDP2 and distributed
checkpoints, on 2 gloo processes over 127.0.0.1 that each test starts (and kills on a hang)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch.distributed as dist

from . import dist_scenarios
from .spawn import run_distributed

pytestmark = pytest.mark.skipif(
    not dist.is_available(), reason="torch built without torch.distributed"
)

TIMEOUT = 90.0  # each job takes a few seconds to tens of seconds; a hang fails here


def test_ddp_matches_single_process_on_combined_batch() -> None:
    run_distributed(dist_scenarios.ddp, timeout=TIMEOUT)


def test_zero_redundancy_optimizer() -> None:
    run_distributed(dist_scenarios.zero, timeout=TIMEOUT)


def test_fsdp2_dtensor_every_executor() -> None:
    run_distributed(dist_scenarios.fsdp2, timeout=TIMEOUT)


def test_distributed_checkpoint_round_trip(tmp_path: Path) -> None:
    run_distributed(dist_scenarios.dcp_round_trip, str(tmp_path), timeout=TIMEOUT)


def _hang(rank: int, world_size: int) -> None:
    import time

    time.sleep(600)


def test_a_hang_fails_instead_of_stalling() -> None:
    """The helper's own guard: a job that never ends is killed and fails the test."""
    with pytest.raises(TimeoutError, match="did not finish"):
        run_distributed(_hang, timeout=4.0)
