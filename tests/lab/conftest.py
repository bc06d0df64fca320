"""Lab tests: one torch thread (the lab's workers use one; tiny tensors on many threads only
contend), restored after each module; the default run's figures, computed once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from momentopt.lab import lrsearch
from momentopt.lab.optimizers import Registry
from momentopt.lab.scenarios import EXPERIMENTS, ORDER, SCENARIOS, Run
from momentopt.lab.scenarios.reddi import RUNGS

DEFAULT_SEEDS = (0, 1, 2)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def default_runs() -> dict[str, dict[str, Run]]:
    """The runs every scenario's verdict reads, exactly as a default ``momentopt compare``
    makes them (grid, horizons, seeds 0–2), for the scenarios' participants only: a verdict
    reads nothing else. Reddi's problem runs only the ladder (its tuned grid is one rung),
    which leaves its verdict's figures as they are and saves two thirds of its cost."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    registry = Registry()
    needed: dict[str, set[str]] = {}
    for s in (SCENARIOS[name] for name in ORDER):  # the lineage's: the default run
        needed.setdefault(s.experiment, set()).update(s.participants)
    runs: dict[str, dict[str, Run]] = {}
    for name, optimizers in needed.items():
        e = EXPERIMENTS[name]
        lrs = [RUNGS[0]] if name == "reddi" else lrsearch.grid()
        runs[name] = {
            spec.name: e.run(spec, lrs, e.default_steps, DEFAULT_SEEDS)
            for spec in registry.resolve(sorted(optimizers))
        }
    torch.set_num_threads(before)
    return runs
