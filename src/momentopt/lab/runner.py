"""Runs the (experiment × optimizer) jobs the chosen scenarios need, in worker processes when
there are cores, and judges every scenario on its experiment's runs."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from .optimizers import Spec
from .scenarios import EXPERIMENTS, Experiment, Run, Scenario, Verdict

# rough relative cost of one job, to start the slow ones first
COST = {
    "digits-final": 14.0,
    "digits": 8.0,
    "reddi": 6.0,
    "noisy-quadratic": 4.0,
    "sparse": 4.0,
    "effective-lr": 3.0,
    "rosenbrock": 2.0,
}


@dataclass
class Results:
    """Everything a report needs."""

    runs: dict[str, dict[str, Run]]  # experiment → optimizer → run
    verdicts: dict[str, Verdict]  # scenario → verdict
    settings: dict[str, Any]
    seconds: float
    scenarios: list[Scenario] = field(default_factory=list)
    specs: list[Spec] = field(default_factory=list)
    registry: dict[str, Spec] = field(default_factory=dict)  # every name the story may show


class JobFailed(RuntimeError):
    """An optimizer raised on an experiment (e.g. a user's class that refuses its parameters)."""


def run_job(
    experiment: str, spec: Spec, lrs: Sequence[float], steps: int, seeds: Sequence[int]
) -> Run:
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(seeds[0])
    try:
        return EXPERIMENTS[experiment].run(spec, list(lrs), steps, list(seeds))
    except (RuntimeError, ValueError, TypeError) as error:
        raise JobFailed(f"{spec.name} failed on the {experiment} experiment: {error}") from None


def default_jobs() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def experiments_for(scenarios: Sequence[Scenario]) -> list[Experiment]:
    """The experiments the scenarios need, in the order they first appear."""
    names = list(dict.fromkeys(s.experiment for s in scenarios))
    return [EXPERIMENTS[n] for n in names]


def plan(
    scenarios: Sequence[Scenario], specs: Sequence[Spec], steps: int | None
) -> list[tuple[Experiment, Spec, int]]:
    """(experiment, optimizer, steps) for every job, the slow ones first."""
    jobs = [
        (e, spec, steps or e.default_steps)
        for e in experiments_for(scenarios)
        for spec in specs
        if e.runs_with(spec)
    ]
    return sorted(jobs, key=lambda j: -COST.get(j[0].name, 1.0) * j[2] / j[0].default_steps)


def run_all(
    scenarios: Sequence[Scenario],
    specs: Sequence[Spec],
    lrs: Sequence[float],
    steps: int | None,
    seeds: Sequence[int],
    jobs: int = 1,
    on_done: Callable[[str, str], None] | None = None,
    registry: dict[str, Spec] | None = None,
) -> Results:
    """Run every job the scenarios need; ``steps`` None → each experiment's own horizon."""
    start = time.perf_counter()
    tasks = plan(scenarios, specs, steps)
    done: dict[tuple[str, str], Run] = {}
    if jobs <= 1:
        for e, spec, n in tasks:
            done[(e.name, spec.name)] = run_job(e.name, spec, lrs, n, seeds)
            if on_done:
                on_done(e.name, spec.name)
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {
                pool.submit(run_job, e.name, spec, list(lrs), n, list(seeds)): (e.name, spec.name)
                for e, spec, n in tasks
            }
            for future in as_completed(futures):
                key = futures[future]
                done[key] = future.result()
                if on_done:
                    on_done(*key)
    runs = {
        e.name: {
            spec.name: done[(e.name, spec.name)] for spec in specs if (e.name, spec.name) in done
        }
        for e in experiments_for(scenarios)
    }
    verdicts = {s.name: s.verdict(runs[s.experiment]) for s in scenarios}
    settings = {
        "lr_grid": [float(v) for v in lrs],
        "lr_grid_refined": {
            e.name: e.grid_for(lrs) for e in experiments_for(scenarios) if e.refine > 1
        },
        "steps": {e.name: steps or e.default_steps for e in experiments_for(scenarios)},
        "seeds": list(seeds),
        "optimizers": [spec.name for spec in specs],
        "optimizer_kwargs": {spec.name: dict(spec.kwargs) for spec in specs},
        "added_optimizers": {
            spec.name: f"{spec.cls.__module__}:{spec.cls.__name__}" for spec in specs if spec.added
        },
        "gradient_clipping": "none",
        "jobs": jobs,
    }
    return Results(
        runs,
        verdicts,
        settings,
        time.perf_counter() - start,
        list(scenarios),
        list(specs),
        dict(registry or {s.name: s for s in specs}),
    )
