"""Adam with L2 (coupled decay) vs AdamW (decoupled decay): the decay each weight receives.

Coupled decay adds λ·w to the gradient, which then goes through Adam's 1/√V: weights with a
large gradient scale are barely decayed, weights with a small one are decayed hard. Decoupled
decay shrinks every weight by the same factor 1 − α·λ (Loshchilov & Hutter 2019).

Measured, not assumed: at the end of training the lab takes one more step from the same
state and gradient twice — once with weight_decay = λ and once with 0 — and the difference is
the decay each weight received, as a fraction of the weight.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..optimizers import Spec
from .base import Check, Copy, CopyResult, Experiment, GridTrace, Run, Scenario, generator, run_grid

DECAY = 1e-2
DIM, BATCH = 9, 16


class WeightDecayProblem(Experiment):
    name = "weight-decay"
    title = "Weight decay with gradients of very different scales"
    setup = (
        f"Linear regression on {DIM} features whose scales span 4 decades (10⁻² … 10²), so the "
        f"weights' gradient scales do too; weight_decay = {DECAY} for every optimizer; after "
        "the run, one extra step with and without decay from the same state measures the "
        "decay each weight receives."
    )
    default_steps = 200
    optimizer_kwargs = {"*": {"weight_decay": DECAY}}

    def simulate(self, spec: Spec, copies: Sequence[Copy], steps: int) -> list[CopyResult]:
        gen = generator(copies[0].seed)
        f64 = torch.float64
        scales = torch.logspace(-2, 2, DIM, dtype=f64)
        w_true = torch.randn(DIM, generator=gen, dtype=f64) / scales
        xs = torch.randn(steps + 1, BATCH, DIM, generator=gen, dtype=f64) * scales
        ys = xs @ w_true + 0.1 * torch.randn(steps + 1, BATCH, generator=gen, dtype=f64)

        def losses(params: list[list[Tensor]], t: int) -> Tensor:
            w = torch.stack([p[0] for p in params])
            return 0.5 * (xs[t - 1] @ w.T - ys[t - 1, :, None]).pow(2).mean(0)

        trace = run_grid(
            spec,
            copies,
            steps,
            init=lambda c: [torch.ones(DIM, dtype=f64, requires_grad=True)],
            losses=losses,
            optimizer_kwargs={"weight_decay": DECAY},
        )
        decays = decay_received(trace, lambda params: losses(params, steps + 1))
        out = []
        for i in range(len(copies)):
            decay = decays[i]
            positive = [d for d in decay if math.isfinite(d) and d > 0]
            out.append(
                CopyResult(
                    trace.column(i),
                    {"relative_decay": decay, "gradient_scale": scales.tolist()},
                    {
                        "decay_spread": max(positive) / min(positive)
                        if len(positive) == len(decay)
                        else math.nan,
                        "decay_at_small_grad": decay[0],
                        "decay_at_large_grad": decay[-1],
                        "final_loss": trace.column(i)[-1],
                    },
                )
            )
        return out


def decay_received(
    trace: GridTrace, loss_fn: Callable[[list[list[Tensor]]], Tensor]
) -> list[list[float]]:
    """One more step with and without weight decay from the same state (copies of it), for
    every copy: (w without decay − w with decay) / w before."""
    after = []
    for decay in (DECAY, 0.0):
        params, opt = copy.deepcopy((trace.params, trace.optimizer))
        for group in opt.param_groups:
            group["weight_decay"] = decay
        opt.zero_grad()
        losses = loss_fn(params)
        torch.where(torch.isfinite(losses), losses, torch.zeros_like(losses)).sum().backward()
        before = [p[0].detach().clone() for p in params]
        opt.step()
        after.append([p[0].detach() for p in params])
    return [((b - a) / w).tolist() for w, a, b in zip(before, *after, strict=True)]


class AdamwDecay(Scenario):
    name = "weight-decay"
    section = "AdamW"
    experiment = "weight-decay"
    title = "Coupled L2 decays weights by their gradient scale; AdamW's decay is uniform"
    claim = (
        "With L2 in the gradient (Adam's weight_decay), the decay a weight receives shrinks "
        "as its gradient scale grows; AdamW's decoupled decay is the same α·λ for every weight."
    )
    kind = "mechanism (each at its tuned lr)"
    reason = (
        "Coupled: the decay term λ·w is divided by √V like the gradient, so a weight with "
        "gradients 10⁴ times larger is decayed ≈ 10⁴ times less (Loshchilov & Hutter 2019, "
        "§2). Decoupled: w ← w·(1 − α·λ) before the step, the same for all. Thresholds: a "
        "spread over 10× is the coupling; under 1.5× is uniform up to round-off."
    )
    participants = ("Adam", "AdamW")
    criteria = (
        "the spread (max/min across the 9 weights) of the decay received in one step is "
        "above 10× for Adam",
        "the same spread is below 1.5× for AdamW",
    )

    def judge(self, runs: dict[str, Run]) -> list[Check]:
        adam, adamw = runs["Adam"].metric("decay_spread"), runs["AdamW"].metric("decay_spread")
        return [
            self.check(
                0, f"Adam {adam:.3g}× (lr {runs['Adam'].lr:g})", [adam > 10], adam_spread=adam
            ),
            self.check(
                1,
                f"AdamW {adamw:.3g}× (lr {runs['AdamW'].lr:g})",
                [adamw < 1.5],
                adamw_spread=adamw,
            ),
        ]

    def note(self, runs: dict[str, Run]) -> str:
        if "SGD" not in runs:
            return ""
        return (
            "Also measured: plain SGD's spread is "
            f"{runs['SGD'].metric('decay_spread'):.3g}× — without a √V there is nothing to couple to."
        )


EXPERIMENTS = (WeightDecayProblem(),)
SCENARIOS = (AdamwDecay(),)
