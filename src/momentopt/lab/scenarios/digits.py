"""A real small network on a real data set: an MLP on scikit-learn's digits (ships offline)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..optimizers import Spec
from .base import Run, Scenario, Verdict, choose, generator, run_grid

HIDDEN = 32


def load(seed: int):
    """Digits (8×8 images, 10 classes), scaled to [0, 1], split 75/25 with ``seed``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data / 16.0, data.target, test_size=0.25, random_state=seed, stratify=data.target
    )

    def as_x(a: Any) -> torch.Tensor:
        return torch.tensor(a, dtype=torch.float32)

    def as_y(a: Any) -> torch.Tensor:
        return torch.tensor(a, dtype=torch.long)

    return as_x(x_train), as_y(y_train), as_x(x_test), as_y(y_test)


def forward(copies, x):
    """G MLPs 64 → 32 (tanh) → 10 at once: logits of shape (G, N, 10)."""
    w1 = torch.stack([c[0] for c in copies])
    b1 = torch.stack([c[1] for c in copies])
    w2 = torch.stack([c[2] for c in copies])
    b2 = torch.stack([c[3] for c in copies])
    h = torch.tanh(torch.matmul(x, w1) + b1[:, None, :])
    return torch.matmul(h, w2) + b2[:, None, :]


def per_copy_loss(logits, y):
    g, n, k = logits.shape
    return (
        F.cross_entropy(logits.reshape(g * n, k), y.repeat(g), reduction="none").view(g, n).mean(1)
    )


class Digits(Scenario):
    name = "digits"
    title = "A real network: MLP on scikit-learn's digits"
    claim = (
        "On a real (small) problem every method learns; train/test loss and accuracy compare them."
    )
    measure = "test accuracy and test loss after the horizon (lr tuned on training loss only)"
    criterion = "mean minibatch training loss over the horizon (the test set is never used to tune)"
    default_steps = 250
    batch = 64
    every = 10

    def run(self, spec: Spec, lrs: Sequence[float], steps: int, seed: int) -> Run:
        x_train, y_train, x_test, y_test = load(seed)
        gen = generator(seed)
        init_w1 = torch.randn(64, HIDDEN, generator=gen) / 8.0
        init_w2 = torch.randn(HIDDEN, 10, generator=gen) / math.sqrt(HIDDEN)
        batches = torch.randint(0, x_train.shape[0], (steps, self.batch), generator=gen)

        def init():
            return [
                init_w1.clone().requires_grad_(),
                torch.zeros(HIDDEN, requires_grad=True),
                init_w2.clone().requires_grad_(),
                torch.zeros(10, requires_grad=True),
            ]

        def losses(copies, t):
            idx = batches[t - 1]
            return per_copy_loss(forward(copies, x_train[idx]), y_train[idx])

        def evaluate(copies, t):
            if t % self.every and t != steps:
                return None
            with torch.no_grad():
                out = {}
                for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
                    logits = forward(copies, x)
                    out[f"{split}_loss"] = per_copy_loss(logits, y).tolist()
                    out[f"{split}_acc"] = (logits.argmax(-1) == y).float().mean(1).tolist()
                out["step"] = t
                return out

        trace = run_grid(spec, lrs, steps, init=init, losses=losses, watch=evaluate)
        best, run = choose(spec, lrs, trace)
        evals = [e for e in trace.watched if e is not None]
        run.curves["eval_step"] = [e["step"] for e in evals]
        for key in ("train_loss", "test_loss", "train_acc", "test_acc"):
            run.curves[key] = [e[key][best] for e in evals]
            run.metrics[key] = run.curves[key][-1]
        return run

    def verdict(self, runs: dict[str, Run]) -> Verdict:
        acc = {n: r.metrics["test_acc"] for n, r in runs.items()}
        loss = {n: r.metrics["test_loss"] for n, r in runs.items()}
        holds = all(v > 0.8 for v in acc.values()) if acc else None
        text = ", ".join(f"{n} {v:.1%}" for n, v in sorted(acc.items(), key=lambda kv: -kv[1]))
        return Verdict(holds, {"test_acc": acc, "test_loss": loss}, f"test accuracy: {text}")
