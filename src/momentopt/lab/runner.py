"""Runs (scenario × optimizer) jobs, in worker processes when there are cores, with progress."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from .optimizers import BY_NAME, Spec
from .scenarios import SCENARIOS, Run, Scenario, Verdict

# rough relative cost per step, to start the slow jobs first
COST = {"reddi": 1.0, "digits": 3.5, "sparse": 2.5, "effective-lr": 3.0}


@dataclass
class Results:
    """Everything a report needs."""

    runs: dict[str, dict[str, Run]]
    verdicts: dict[str, Verdict]
    settings: dict[str, Any]
    seconds: float
    scenarios: list[Scenario] = field(default_factory=list)


def run_job(scenario: str, optimizer: str, lrs: Sequence[float], steps: int, seed: int) -> Run:
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    return SCENARIOS[scenario].run(BY_NAME[optimizer], list(lrs), steps, seed)


def default_jobs() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def run_all(
    scenarios: Sequence[Scenario],
    specs: Sequence[Spec],
    lrs: Sequence[float],
    steps: int | None,
    seed: int,
    jobs: int = 1,
    on_done: Callable[[str, str], None] | None = None,
) -> Results:
    """Run every scenario with every optimizer over the lr grid; ``steps`` None → defaults."""
    start = time.perf_counter()
    tasks = [
        (s.name, spec.name, list(lrs), steps or s.default_steps, seed)
        for s in scenarios
        for spec in specs
    ]
    tasks.sort(key=lambda t: -t[3] * COST.get(t[0], 1.0))
    done: dict[tuple[str, str], Run] = {}
    if jobs <= 1:
        for task in tasks:
            done[task[:2]] = run_job(*task)
            if on_done:
                on_done(*task[:2])
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(run_job, *task): task for task in tasks}
            for future in as_completed(futures):
                task = futures[future]
                done[task[:2]] = future.result()
                if on_done:
                    on_done(*task[:2])
    runs = {s.name: {spec.name: done[(s.name, spec.name)] for spec in specs} for s in scenarios}
    verdicts = {s.name: s.verdict(runs[s.name]) for s in scenarios}
    settings = {
        "lr_grid": [float(v) for v in lrs],
        "steps": {s.name: steps or s.default_steps for s in scenarios},
        "seed": seed,
        "optimizers": [spec.name for spec in specs],
        "optimizer_kwargs": {spec.name: dict(spec.kwargs) for spec in specs},
        "gradient_clipping": "none",
        "jobs": jobs,
    }
    return Results(runs, verdicts, settings, time.perf_counter() - start, list(scenarios))


def ranking(results: Results) -> list[tuple[str, dict[str, int], float]]:
    """Per optimizer: its rank in each scenario (by the scenario's tuning score at the chosen
    lr, 1 = best) and the mean rank, best first."""
    ranks: dict[str, dict[str, int]] = {}
    for scenario, runs in results.runs.items():
        ordered = sorted(runs.values(), key=lambda r: r.scores[r.grid.index(r.lr)])
        for i, run in enumerate(ordered, 1):
            ranks.setdefault(run.optimizer, {})[scenario] = i
    rows = [(name, r, sum(r.values()) / len(r)) for name, r in ranks.items()]
    return sorted(rows, key=lambda row: row[2])
