"""AdaGrad's effective learning rate α/√V decays; RMSprop's and AdaDelta's do not."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..optimizers import Spec
from .base import Run, Scenario, Verdict, choose, generator, run_grid


class EffectiveLr(Scenario):
    name = "effective-lr"
    title = "Effective learning rate α/√V over time"
    claim = (
        "AdaGrad sums every squared gradient, so its effective lr α/√V decays towards zero; "
        "RMSprop and AdaDelta average over a window, so theirs does not."
    )
    measure = (
        "median effective lr (momentopt.diagnostics, lr_eff_q50) at the last step over its value "
        "at step 10, on noisy linear regression with stationary gradient noise"
    )
    default_steps = 200
    batch = 4
    dim = 20

    def run(self, spec: Spec, lrs: Sequence[float], steps: int, seed: int) -> Run:
        gen = generator(seed)
        w_true = torch.randn(self.dim, generator=gen)
        xs = torch.randn(steps, self.batch, self.dim, generator=gen)
        ys = xs @ w_true + 2.0 * torch.randn(steps, self.batch, generator=gen)

        def losses(copies, t):
            w = torch.stack([c[0] for c in copies])  # (G, d)
            pred = xs[t - 1] @ w.T  # (B, G)
            return 0.5 * (pred - ys[t - 1, :, None]).pow(2).mean(0)

        trace = run_grid(
            spec,
            lrs,
            steps,
            init=lambda: [torch.zeros(self.dim, requires_grad=True)],
            losses=losses,
            record=True,
        )
        best, run = choose(spec, lrs, trace)
        rec = trace.recorder
        for field in (
            "lr_eff_q05",
            "lr_eff_q50",
            "lr_eff_q95",
            "update_to_weight",
            "cos_m_g",
            "eps_share",
        ):
            run.curves[field] = rec.series(field, group=best)
        eff = run.curves["lr_eff_q50"]
        early = eff[min(9, len(eff) - 1)]
        run.metrics["lr_eff_step10"] = early
        run.metrics["lr_eff_final"] = eff[-1]
        run.metrics["lr_eff_ratio"] = eff[-1] / early if early > 0 else math.nan
        return run

    def verdict(self, runs: dict[str, Run]) -> Verdict:
        ratio = {n: r.metrics["lr_eff_ratio"] for n, r in runs.items()}
        holds = None
        if {"Adagrad", "RMSprop", "Adadelta"} <= set(ratio):
            holds = ratio["Adagrad"] < 0.5 and ratio["RMSprop"] > 0.5 and ratio["Adadelta"] > 0.5
        text = ", ".join(f"{n} {v:.3g}" for n, v in ratio.items())
        return Verdict(holds, {"lr_eff_ratio": ratio}, f"final / step-10 effective lr: {text}")
