"""Reddi, Kale & Kumar (ICLR 2018), "On the convergence of Adam and beyond", §3 and Fig. 1.

Online problem on x ∈ [−1, 1]: f_t(x) = 1010·x if t mod 101 = 1, else −10·x. The average
gradient is +10/101 > 0, so the optimum is x = −1. Adam (β1 = 0.9, β2 = 0.99) normalises the rare
large gradient by its own size but the frequent small ones by a shrinking √v, and drifts
towards the worst point x = +1; AMSGrad keeps the maximum of v and heads for −1. x starts at 0 and is projected back onto [−1, 1]
after each step (the problem's constraint, not clipping). The lr is constant (the paper's
proof uses α/√t; over the steps the lab can afford, a constant lr shows the drift clearly).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..optimizers import Spec
from .base import Check, Copy, CopyResult, Experiment, Ladder, Run, Scenario, run_grid

PERIOD = 101
RUNGS = (0.01, 0.03, 0.1)


def gradient_at(t: int) -> float:
    return 1010.0 if t % PERIOD == 1 else -10.0


class ReddiProblem(Experiment):
    name = "reddi"
    title = "Reddi et al.'s online problem"
    setup = (
        "f_t(x) = 1010·x when t mod 101 = 1, else −10·x, on x ∈ [−1, 1] (projected after each "
        "step); the optimum is x = −1, the worst point +1. Start x = 0; β = (0.9, 0.99) for "
        "the Adam family, the paper's setting; 3030 steps (30 periods), float64. Run by the Adam family only."
    )
    default_steps = 3030
    only = ("Adam", "AMSGrad", "NAdam", "AdamW")
    criterion = "mean online loss f_t(x_t) over the horizon (the average regret)"
    ladders = {
        "adam": Ladder(
            ("Adam", "AMSGrad"),
            RUNGS,
            "Adam and AMSGrad at the same lr ∈ {0.01, 0.03, 0.1}: steps of 1–10 % of the "
            "interval's half-width, small enough to settle, large enough to cross it many "
            "times within the run",
        )
    }
    optimizer_kwargs = {
        name: {"betas": (0.9, 0.99)} for name in ("Adam", "AMSGrad", "NAdam", "AdamW")
    }

    def simulate(self, spec: Spec, copies: Sequence[Copy], steps: int) -> list[CopyResult]:
        xs: list[list[float]] = []

        def watch(params: list[list[Tensor]], t: int) -> None:
            xs.append(torch.cat([p[0].detach() for p in params]).tolist())

        trace = run_grid(
            spec,
            copies,
            steps,
            init=lambda c: [torch.zeros(1, dtype=torch.float64, requires_grad=True)],
            losses=lambda params, t: gradient_at(t) * torch.cat([p[0] for p in params]),
            after_step=lambda params, t: [p[0].clamp_(-1.0, 1.0) for p in params],
            watch=watch,
            optimizer_kwargs=self.optimizer_kwargs.get(spec.name, {}),
        )
        out = []
        for i in range(len(copies)):
            path = [row[i] for row in xs]
            tail = path[-PERIOD:]
            out.append(
                CopyResult(
                    trace.column(i),
                    {"x": path},
                    {"x_last_period": sum(tail) / len(tail), "x_final": path[-1]},
                )
            )
        return out


class AmsgradReddi(Scenario):
    name = "reddi"
    section = "Adam"
    experiment = "reddi"
    title = "Adam can drift to the worst point; AMSGrad does not"
    claim = (
        "On Reddi, Kale & Kumar's online problem Adam's short memory of v underweights the "
        "rare large gradient, and it drifts to the worst point x = +1; AMSGrad, which keeps "
        "the running maximum of v, heads for the optimum x = −1."
    )
    kind = "dynamics (matched step sizes)"
    ladder = "adam"
    reason = (
        "Adam divides each step by √v, a running RMS of the gradients with a memory of "
        "≈ 1/(1−β2) = 100 steps: the one large gradient (+1010) moves x by only ≈ α (it is "
        "divided by its own size), while each of the hundred small ones (−10) moves it by "
        "α·10/√v, with √v shrinking between the large ones — in sum towards +1, although the "
        "gradients sum towards −1 (Reddi et al. 2018, §3, Theorem 1 and Fig. 1). AMSGrad's "
        "v̂ = max v keeps 1010² in the denominator, so the small steps stay small and x follows "
        "the mean gradient, towards −1."
    )
    participants = ("Adam", "AMSGrad")
    criteria = (
        "matched steps (both at the same lr ∈ {0.01, 0.03, 0.1}): over the last period Adam's "
        "mean x is above +0.5 and AMSGrad's below 0, at each lr",
    )

    def judge(self, runs: dict[str, Run]) -> list[Check]:
        adam, ams = runs["Adam"], runs["AMSGrad"]
        rungs = [r for r in RUNGS if f"{r:g}" in adam.matched and f"{r:g}" in ams.matched]
        pairs = {
            f"{r:g}": (
                adam.matched_metric(r, "x_last_period"),
                ams.matched_metric(r, "x_last_period"),
            )
            for r in rungs
        }
        return [
            self.check(
                0,
                "mean x over the last period, Adam / AMSGrad at lr "
                + ", ".join(f"{k}: {a:+.2f} / {m:+.2f}" for k, (a, m) in pairs.items()),
                [a > 0.5 and m < 0 for a, m in pairs.values()],
                x_last_period={k: {"Adam": a, "AMSGrad": m} for k, (a, m) in pairs.items()},
            )
        ]

    def note(self, runs: dict[str, Run]) -> str:
        adam, ams = runs["Adam"], runs["AMSGrad"]
        return (
            f"Tuned runs, shown separately: tuned on the average regret, Adam picks lr "
            f"{adam.lr:g} and AMSGrad {ams.lr:g}, and end at x = "
            f"{adam.metric('x_last_period'):+.3f} and {ams.metric('x_last_period'):+.3f}: at the "
            "grid's smallest lr hardly moving is the lowest regret over this horizon."
        )


EXPERIMENTS = (ReddiProblem(),)
SCENARIOS = (AmsgradReddi(),)
