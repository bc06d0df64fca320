"""Reddi, Kale & Kumar (ICLR 2018), "On the convergence of Adam and beyond", §3 / Fig. 1.

Online problem on x ∈ [−1, 1]: f_t(x) = 1010·x if t mod 101 = 1, else −10·x. The average
gradient is +10/101 > 0, so the optimum is x = −1; Adam (β1 = 0.9, β2 = 0.99) forgets the
rare large gradient within a few steps and drifts to the worst point x = +1, AMSGrad keeps
the maximum of v and goes to −1. x starts at 0 and is projected back onto [−1, 1] after each
step (the problem's constraint, not clipping). The lr is constant (the paper's proof uses
α/√t; over the few thousand steps the lab can afford, the constant lr shows the drift more
clearly — both were measured, see docs/lab.md).

Tuning on the online loss is fair but not the point here: the claim is about *where* the
iterates go, for any lr. So the report also shows, for every optimizer, the mean x over the
last period at every lr of the grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..optimizers import Spec
from .base import Run, Scenario, Verdict, choose, run_grid

PERIOD = 101


def gradient_at(t: int) -> float:
    return 1010.0 if t % PERIOD == 1 else -10.0


class Reddi(Scenario):
    name = "reddi"
    title = "Reddi et al.'s online problem: Adam converges to the worst point"
    claim = (
        "On Reddi, Kale & Kumar's online problem Adam ends at the worst point x = +1, AMSGrad "
        "(running max of v) at the optimum x = −1."
    )
    measure = (
        "mean x over the last 101 steps (one period), at every lr of the grid; "
        "optimum −1, worst point +1"
    )
    criterion = "mean online loss f_t(x_t) over the horizon (average regret)"
    default_steps = 808
    start = 0.0
    optimizer_kwargs = {
        name: {"betas": (0.9, 0.99)} for name in ("Adam", "AMSGrad", "NAdam", "AdamW")
    }

    def run(self, spec: Spec, lrs: Sequence[float], steps: int, seed: int) -> Run:
        trace = run_grid(
            spec,
            lrs,
            steps,
            init=lambda: [torch.tensor([self.start], dtype=torch.float64, requires_grad=True)],
            losses=lambda copies, t: gradient_at(t) * torch.cat([c[0] for c in copies]),
            optimizer_kwargs=self.optimizer_kwargs.get(spec.name, {}),
            after_step=lambda copies, t: [c[0].clamp_(-1.0, 1.0) for c in copies],
            watch=lambda copies, t: [float(c[0].detach()) for c in copies],
        )
        best, run = choose(spec, lrs, trace)
        xs = [row[best] for row in trace.watched]
        run.curves["x"] = xs
        tail = xs[-PERIOD:]
        run.metrics["x_final_mean"] = sum(tail) / len(tail)
        run.metrics["x_final"] = xs[-1]
        run.extra["x_by_lr"] = {
            f"{lr:g}": sum(row[i] for row in trace.watched[-PERIOD:]) / PERIOD
            for i, lr in enumerate(lrs)
        }
        return run

    def verdict(self, runs: dict[str, Run]) -> Verdict:
        x = {n: r.metrics["x_final_mean"] for n, r in runs.items()}
        by_lr = {n: r.extra["x_by_lr"] for n, r in runs.items()}
        holds = None
        text = "tuned lr: " + ", ".join(f"{n} {v:+.3f}" for n, v in x.items())
        if {"Adam", "AMSGrad"} <= set(x):
            adam, ams = by_lr["Adam"], by_lr["AMSGrad"]
            split = [lr for lr in adam if adam[lr] > 0.5 and ams[lr] < 0]
            holds = bool(split)
            text += (
                f". Adam > +0.5 while AMSGrad < 0 at lr {', '.join(split) or 'none'} of the grid; "
                f"Adam's x per lr: {', '.join(f'{k}: {v:+.2f}' for k, v in adam.items())}; "
                f"AMSGrad's: {', '.join(f'{k}: {v:+.2f}' for k, v in ams.items())}"
            )
        return Verdict(holds, {"x_final_mean": x, "x_by_lr": by_lr}, text)
