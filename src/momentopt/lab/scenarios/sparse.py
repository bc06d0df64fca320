"""Sparse features: logistic regression where the informative features are rare."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..optimizers import Spec
from .base import Run, Scenario, Verdict, choose, generator, run_grid


def make_data(seed: int, n: int = 2000, frequent: int = 10, rare: int = 90):
    """Binary features: ``frequent`` ones on half the time with small weights, ``rare`` ones on
    2% of the time with large weights; labels drawn from the logistic model."""
    gen = generator(seed)
    p = torch.cat([torch.full((frequent,), 0.5), torch.full((rare,), 0.02)])
    x = (torch.rand(n, frequent + rare, generator=gen) < p).float()
    w = torch.cat(
        [0.2 * torch.randn(frequent, generator=gen), 4 * torch.randn(rare, generator=gen)]
    )
    y = (torch.rand(n, generator=gen) < torch.sigmoid(x @ w)).float()
    return x, y


class SparseFeatures(Scenario):
    name = "sparse"
    title = "Sparse features: logistic regression with rare informative features"
    claim = (
        "With rare but informative features, per-coordinate steps (AdaGrad, Adam) learn the rare "
        "weights that one global lr cannot: they beat SGD."
    )
    measure = "full-data logistic loss at the end (mean of the last 10% of steps), tuned lr"
    default_steps = 300
    batch = 32

    def run(self, spec: Spec, lrs: Sequence[float], steps: int, seed: int) -> Run:
        x, y = make_data(seed)
        d = x.shape[1]
        gen = generator(seed + 1)
        batches = torch.randint(0, x.shape[0], (steps, self.batch), generator=gen)

        def losses(copies, t):
            w = torch.stack([c[0] for c in copies])  # (G, d)
            b = torch.stack([c[1] for c in copies])  # (G,)
            idx = batches[t - 1]
            logits = x[idx] @ w.T + b  # (B, G)
            return F.binary_cross_entropy_with_logits(
                logits, y[idx, None].expand_as(logits), reduction="none"
            ).mean(0)

        def full_loss(copies, t):
            if t % 5 and t != steps:
                return None
            with torch.no_grad():
                w = torch.stack([c[0] for c in copies])
                b = torch.stack([c[1] for c in copies])
                logits = x @ w.T + b
                target = y[:, None].expand_as(logits)
                return (
                    F.binary_cross_entropy_with_logits(logits, target, reduction="none")
                    .mean(0)
                    .tolist()
                )

        trace = run_grid(
            spec,
            lrs,
            steps,
            init=lambda: [torch.zeros(d, requires_grad=True), torch.zeros((), requires_grad=True)],
            losses=losses,
            watch=full_loss,
        )
        best, run = choose(spec, lrs, trace)
        evals = [(t, row) for t, row in enumerate(trace.watched) if row is not None and t > 0]
        full = [row[best] for _, row in evals]
        run.curves["full_loss"] = full
        run.curves["full_loss_step"] = [t for t, _ in evals]
        tail = full[-max(1, len(full) // 10) :]
        run.metrics["final_loss"] = sum(tail) / len(tail)
        w = trace.params[best][0].detach()
        run.metrics["rare_weight_norm"] = float(w[10:].norm())
        return run

    def verdict(self, runs: dict[str, Run]) -> Verdict:
        loss = {n: r.metrics["final_loss"] for n, r in runs.items()}
        holds = None
        if {"SGD", "Adagrad", "Adam"} <= set(loss):
            holds = loss["Adagrad"] < loss["SGD"] and loss["Adam"] < loss["SGD"]
        text = ", ".join(f"{n} {v:.4f}" for n, v in loss.items())
        return Verdict(holds, {"final_loss": loss}, f"final full-data loss: {text}")
