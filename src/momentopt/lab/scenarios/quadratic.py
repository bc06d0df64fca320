"""A noisy quadratic: the noisy quadratic model of Zhang, Li, Nado, Martens, Sachdeva, Dahl,
Shallue & Grosse (2019, "Which algorithmic choices matter at which batch sizes? Insights from a
noisy quadratic model"), small enough to run every optimizer at every lr in seconds.

.. math::
    f(w) = ½ \\sum_i h_i (w_i − w^*_i)^2, \\quad h_i = 1/i,\\ i = 1 … 100, \\qquad
    g = ∇f(w) + σ\\sqrt{h} ∘ ξ,\\ ξ \\sim N(0, I),\\ σ = 0.1

— curvatures spread over two decades (condition number 100) and gradient noise whose
covariance is proportional to the curvature, as the model has it (``C = H/B``, batch ``B =
1/σ²``). The start is ``w = 0``, the optimum ``w* ~ N(0, I)`` drawn per seed (so that weight
decay, which pulls towards 0, neither helps nor has a free target), f(0) ≈ 2.6. The loss falls
while the gradient's signal dominates, then stalls at a floor the noise sets, proportional to
the step size: only a step that shrinks (a schedule) or an average of the iterates goes below
it. What is judged is the exact loss ``f`` (not the noisy one), at the point a user evaluates.

The noise is drawn per seed and step, the same for every optimizer and lr (common random
numbers: a paired comparison), and enters as a term ``ξ·w`` whose value is subtracted again,
so the recorded per-step loss is the exact ``f`` at the point the gradient is taken.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..optimizers import MODERN_NAMES, Spec
from .base import Copy, CopyResult, Experiment, GridTrace, end_metrics, estimated_lr, run_grid
from .base import generator as make_generator

DIM = 100
SIGMA = 0.1
CURVATURE = 1.0 / torch.arange(1, DIM + 1, dtype=torch.float32)


class NoisyQuadratic(Experiment):
    name = "noisy-quadratic"
    title = "A noisy quadratic (the noisy quadratic model)"
    setup = (
        "f(w) = ½·Σ h_i·(w_i − w*_i)² in 100 dimensions, curvatures h_i = 1/i (condition "
        "number 100), gradient noise σ·√h_i·ξ with σ = 0.1 (the noisy quadratic model of Zhang "
        "et al. 2019); start w = 0, optimum w* ~ N(0, I) drawn per seed (f(0) ≈ 2.6), the "
        "noise drawn per seed and step and shared by every optimizer. Constant steps stall at a "
        "noise floor proportional to the step size. The exact f is evaluated every 10 steps at "
        "the point a user evaluates (schedule-free: eval mode)."
    )
    default_steps = 1000
    noisy = True
    every = 10
    refine = 2
    only = ("AdamW", "Adam", *MODERN_NAMES)  # Adam: AdamW without decay, a control
    at_default = ("Prodigy", "ScheduleFreeAdamW", "ScheduleFreeSGD")
    judged = ("eval_loss", "exact loss f at the evaluation point")  # (curve, its label)
    criterion = (
        "final loss: the exact f at the evaluation point, mean over the evaluations in the last "
        "10 % of the run, averaged over the seeds"
    )

    def score(self, result: CopyResult) -> float:
        return result.metrics["final_loss"] if all_finite(result.loss) else math.inf

    def simulate(self, spec: Spec, copies: Sequence[Copy], steps: int) -> list[CopyResult]:
        seeds = sorted({c.seed for c in copies})
        optimum, noise = {}, {}
        for s in seeds:
            gen = make_generator(s)
            optimum[s] = torch.randn(DIM, generator=gen)
            noise[s] = torch.randn(steps, DIM, generator=gen) * (SIGMA * CURVATURE.sqrt())
        targets = torch.stack([optimum[c.seed] for c in copies])
        index = torch.tensor([seeds.index(c.seed) for c in copies])
        draws = torch.stack([noise[s] for s in seeds])  # (seeds, steps, DIM)
        evals: list[list[tuple[int, float]]] = [[] for _ in copies]

        def exact(params: list[list[Tensor]]) -> Tensor:
            w = torch.stack([p[0] for p in params])
            return 0.5 * (CURVATURE * (w - targets) ** 2).sum(1)

        def losses(params: list[list[Tensor]], t: int) -> Tensor:
            w = torch.stack([p[0] for p in params])
            noisy = (draws[index, t - 1] * w).sum(1)
            return exact(params) + noisy - noisy.detach()

        def evaluated(t: int) -> bool:
            return t % self.every == 0 or t == steps

        def watch(params: list[list[Tensor]], t: int) -> None:
            if evaluated(t):
                with torch.no_grad():
                    for i, v in enumerate(exact(params).tolist()):
                        evals[i].append((t, v))

        trace = run_grid(
            spec,
            copies,
            steps,
            init=lambda c: [torch.zeros(DIM, requires_grad=True)],
            losses=losses,
            watch=watch,
            evaluate_at=evaluated,
        )
        out = []
        for i in range(len(copies)):
            curves: dict[str, list[Any]] = {
                "eval_step": [t for t, _ in evals[i]],
                "eval_loss": [v for _, v in evals[i]],
            }
            metrics = self.copy_metrics(trace, i, curves, steps)
            out.append(CopyResult(trace.column(i), curves, metrics))
        return out

    def copy_metrics(
        self, trace: GridTrace, copy: int, curves: dict[str, list[Any]], steps: int
    ) -> dict[str, float]:
        return end_metrics(curves["eval_step"], curves["eval_loss"], steps) | estimated_lr(
            trace.optimizer, copy
        )


def all_finite(values: Sequence[float]) -> bool:
    """Whether no loss of the run is inf or NaN (a run that diverged scores +inf)."""
    return all(math.isfinite(v) for v in values)


EXPERIMENTS = (NoisyQuadratic(),)
