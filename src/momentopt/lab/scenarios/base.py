"""What a scenario is, and the one loop that runs an optimizer over the whole lr grid at once.

Every lr of the grid gets its own copy of the problem's parameters in its own param group of
*one* optimizer, and the copies' losses are summed before ``backward()``: the copies never
interact (their losses are separate terms), so this is exactly G independent runs — sharing
one forward/backward and one ``step()`` call per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .. import lrsearch
from ..optimizers import Spec


@dataclass
class Run:
    """One optimizer on one scenario: the grid, the chosen lr and what the plots need."""

    optimizer: str
    lr: float
    grid: list[float]
    scores: list[float]
    edge: bool
    curves: dict[str, list[float]] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Verdict:
    """A scenario's claim checked on its runs: the numbers, and whether the claim held."""

    holds: bool | None
    numbers: dict[str, Any]
    text: str


class Scenario:
    """One claim of the explainer, a problem that shows it, and the number that measures it."""

    name: str = ""
    title: str = ""
    claim: str = ""
    measure: str = ""
    default_steps: int = 100
    criterion: str = "mean loss over the horizon"
    kind: str = "curves"  # "2d" for contour plots
    optimizer_kwargs: dict[str, dict[str, Any]] = {}

    def run(self, spec: Spec, lrs: Sequence[float], steps: int, seed: int) -> Run:
        raise NotImplementedError

    def verdict(self, runs: dict[str, Run]) -> Verdict:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "claim": self.claim,
            "measure": self.measure,
            "criterion": self.criterion,
            "optimizer_kwargs": self.optimizer_kwargs,
        }


@dataclass
class GridTrace:
    """Per-step records of all G copies: ``losses[t][i]`` and anything ``watch`` returned."""

    losses: list[list[float]]
    watched: list[Any]
    optimizer: Any
    params: list[list[Tensor]]
    recorder: Any = None

    def column(self, i: int) -> list[float]:
        return [row[i] for row in self.losses]


def build_grid_optimizer(
    spec: Spec, params: list[list[Tensor]], lrs: Sequence[float], **kwargs: Any
) -> Any:
    """One optimizer of ``spec`` with one param group (one lr) per copy of the parameters."""
    groups = [{"params": ps, "lr": lr} for ps, lr in zip(params, lrs, strict=True)]
    return spec.build(groups, **kwargs)


def run_grid(
    spec: Spec,
    lrs: Sequence[float],
    steps: int,
    init: Callable[[], list[Tensor]],
    losses: Callable[[list[list[Tensor]], int], Tensor],
    *,
    optimizer_kwargs: dict[str, Any] | None = None,
    after_step: Callable[[list[list[Tensor]], int], None] | None = None,
    watch: Callable[[list[list[Tensor]], int], Any] | None = None,
    schedule: Callable[[int], float] | None = None,
    record: bool = False,
) -> GridTrace:
    """Run ``spec`` at every lr of ``lrs`` for ``steps`` steps.

    ``init()`` makes one copy of the parameters (called once per lr, same values each time);
    ``losses(copies, t)`` returns the G losses at step ``t`` (1-based) as a tensor;
    ``after_step`` may project parameters (a constraint of the problem, not clipping);
    ``watch`` records anything per step; ``schedule(t)`` multiplies the lr
    (``torch.optim.lr_scheduler.LambdaLR``); ``record`` turns on :mod:`momentopt.diagnostics`.
    """
    from momentopt import diagnostics

    copies = [init() for _ in lrs]
    opt = build_grid_optimizer(spec, copies, lrs, **(optimizer_kwargs or {}))
    scheduler = (
        torch.optim.lr_scheduler.LambdaLR(opt, lambda k: schedule(k + 1)) if schedule else None
    )
    recorder = diagnostics.record(opt) if record else None
    rows: list[list[float]] = []
    watched: list[Any] = []
    if watch is not None:
        watched.append(watch(copies, 0))
    for t in range(1, steps + 1):
        opt.zero_grad()
        loss = losses(copies, t)
        finite = torch.isfinite(loss)
        rows.append(
            [
                float(v) if ok else math.inf
                for v, ok in zip(loss.tolist(), finite.tolist(), strict=False)
            ]
        )
        # a diverged copy must not poison the others: its loss term is left out
        torch.where(finite, loss, torch.zeros_like(loss)).sum().backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()
        if after_step is not None:
            with torch.no_grad():
                after_step(copies, t)
        if watch is not None:
            watched.append(watch(copies, t))
    if recorder is not None:
        recorder.close()
    return GridTrace(rows, watched, opt, copies, recorder)


def choose(
    spec: Spec,
    lrs: Sequence[float],
    trace: GridTrace,
    score: Callable[[list[float]], float] | None = None,
) -> tuple[int, Run]:
    """Pick the grid's best lr by ``score`` (default: mean loss) and start its :class:`Run`."""
    score = score or lrsearch.score
    scores = [score(trace.column(i)) for i in range(len(lrs))]
    best = lrsearch.pick(scores)
    run = Run(
        optimizer=spec.name,
        lr=float(lrs[best]),
        grid=[float(v) for v in lrs],
        scores=[float(s) for s in scores],
        edge=lrsearch.at_edge(best, len(lrs)),
        curves={"loss": trace.column(best)},
    )
    return best, run


def mean_log_score(losses: list[float]) -> float:
    """Mean of log10(loss) (for losses ≥ 0 that span decades); +inf on divergence."""
    if not losses or not all(math.isfinite(v) for v in losses):
        return math.inf
    return sum(math.log10(max(v, 1e-30)) for v in losses) / len(losses)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
