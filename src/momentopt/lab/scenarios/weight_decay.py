"""Adam with L2 (coupled decay) vs AdamW (decoupled decay): the decay each weight receives.

Coupled decay adds λ·w to the gradient, which then goes through Adam's 1/√V: weights with a
large gradient scale are barely decayed, weights with a small one are decayed hard. Decoupled
decay shrinks every weight by the same factor 1 − α·λ (Loshchilov & Hutter).

Measured, not assumed: at the end of training the lab takes one more step from the same
state and gradient twice — once with weight_decay = λ and once with 0 — and the difference
is the decay each weight received, as a fraction of the weight.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch

from ..optimizers import Spec
from .base import Run, Scenario, Verdict, choose, generator, run_grid

DECAY = 1e-2


class WeightDecayCoupling(Scenario):
    name = "weight-decay"
    title = "Coupled (Adam + L2) vs decoupled (AdamW) weight decay"
    claim = (
        "With L2 in the gradient (Adam), the decay a weight receives shrinks with its gradient "
        "scale; AdamW's decoupled decay is the same α·λ for every weight."
    )
    measure = (
        "relative decay per weight in one step (weight_decay=λ minus weight_decay=0, same state), "
        "its spread max/min across weights whose gradient scales span 4 decades"
    )
    default_steps = 200
    batch = 16
    dim = 9
    optimizer_kwargs = {"*": {"weight_decay": DECAY}}

    def scales(self) -> torch.Tensor:
        return torch.logspace(-2, 2, self.dim)

    def run(self, spec: Spec, lrs: Sequence[float], steps: int, seed: int) -> Run:
        gen = generator(seed)
        scales = self.scales()
        w_true = torch.randn(self.dim, generator=gen) / scales
        xs = torch.randn(steps + 1, self.batch, self.dim, generator=gen) * scales
        ys = xs @ w_true + 0.1 * torch.randn(steps + 1, self.batch, generator=gen)

        def losses(copies, t):
            w = torch.stack([c[0] for c in copies])
            pred = xs[t - 1] @ w.T
            return 0.5 * (pred - ys[t - 1, :, None]).pow(2).mean(0)

        trace = run_grid(
            spec,
            lrs,
            steps,
            init=lambda: [torch.ones(self.dim, requires_grad=True)],
            losses=losses,
            optimizer_kwargs={"weight_decay": DECAY},
        )
        best, run = choose(spec, lrs, trace)
        decay = self.decay_received(trace, best, lambda copies: losses(copies, steps + 1))
        run.extra["gradient_scale"] = scales.tolist()
        run.extra["relative_decay"] = decay
        finite = [d for d in decay if math.isfinite(d) and d > 0]
        run.metrics["decay_spread"] = max(finite) / min(finite) if finite else math.nan
        run.metrics["decay_at_small_grad"] = decay[0]
        run.metrics["decay_at_large_grad"] = decay[-1]
        run.metrics["final_loss"] = run.curves["loss"][-1]
        return run

    @staticmethod
    def decay_received(trace, best: int, loss_fn) -> list[float]:
        """One more step with and without weight decay from the same state (copies of it)."""
        results = []
        for decay in (DECAY, 0.0):
            params, opt = copy.deepcopy((trace.params, trace.optimizer))
            for group in opt.param_groups:
                group["weight_decay"] = decay
            opt.zero_grad()
            loss_fn(params).sum().backward()
            before = params[best][0].detach().clone()
            opt.step()
            results.append(params[best][0].detach())
        with_decay, without = results
        return ((without - with_decay) / before).tolist()

    def verdict(self, runs: dict[str, Run]) -> Verdict:
        spread = {n: r.metrics["decay_spread"] for n, r in runs.items()}
        holds = None
        if {"Adam", "AdamW"} <= set(spread):
            holds = spread["Adam"] > 10 and spread["AdamW"] < 1.5
        text = ", ".join(f"{n} {v:.3g}×" for n, v in spread.items())
        return Verdict(
            holds, {"decay_spread": spread}, f"spread of the decay across weights: {text}"
        )
