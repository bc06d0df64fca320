"""A real small network on a real data set: an MLP on scikit-learn's digits (ships offline).

The evaluations (training- and test-set loss and accuracy every ``every`` steps) are taken
where a user evaluates: for schedule-free optimizers in ``eval()`` mode (the average ``x``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..optimizers import Spec
from .base import Check, Copy, CopyResult, Experiment, Run, Scenario, generator, run_grid

HIDDEN = 32


def load(seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Digits (8×8 images, 10 classes), scaled to [0, 1], split 75/25 (stratified) by ``seed``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data / 16.0, data.target, test_size=0.25, random_state=seed, stratify=data.target
    )
    return (
        torch.tensor(x_train, dtype=torch.float32),
        torch.tensor(y_train, dtype=torch.long),
        torch.tensor(x_test, dtype=torch.float32),
        torch.tensor(y_test, dtype=torch.long),
    )


def forward(params: list[list[Tensor]], x: Tensor) -> Tensor:
    """G MLPs 64 → 32 (tanh) → 10 at once: logits of shape (G, N, 10); ``x`` is (N, 64) or
    (G, N, 64)."""
    w1, b1, w2, b2 = (torch.stack([p[k] for p in params]) for k in range(4))
    h = torch.tanh(torch.matmul(x, w1) + b1[:, None, :])
    return torch.matmul(h, w2) + b2[:, None, :]


def per_copy_loss(logits: Tensor, y: Tensor) -> Tensor:
    g, n, k = logits.shape
    target = y.expand(g, n).reshape(g * n)
    return F.cross_entropy(logits.reshape(g * n, k), target, reduction="none").view(g, n).mean(1)


class Digits(Experiment):
    name = "digits"
    title = "A real network: an MLP on scikit-learn's digits"
    setup = (
        "MLP 64 → 32 (tanh) → 10 on the 1797 8×8 digit images, 75/25 train/test split; "
        "minibatches of 64; a new split, initialisation and batch order per seed. The test "
        "set is never used to choose the lr."
    )
    default_steps = 250
    noisy = True
    batch = 64
    every = 10
    criterion = "mean minibatch training loss over the horizon, averaged over the seeds"

    def simulate(self, spec: Spec, copies: Sequence[Copy], steps: int) -> list[CopyResult]:
        seeds = sorted({c.seed for c in copies})
        data = {s: load(s) for s in seeds}
        inits, batches = {}, {}
        for s in seeds:
            gen = generator(s)
            inits[s] = (
                torch.randn(64, HIDDEN, generator=gen) / 8.0,
                torch.randn(HIDDEN, 10, generator=gen) / math.sqrt(HIDDEN),
            )
            batches[s] = torch.randint(0, data[s][0].shape[0], (steps, self.batch), generator=gen)
        members = {s: [i for i, c in enumerate(copies) if c.seed == s] for s in seeds}
        order = torch.argsort(torch.tensor([i for s in seeds for i in members[s]]))
        evals: list[list[dict[str, float]]] = [[] for _ in copies]

        def init(c: Copy) -> list[Tensor]:
            w1, w2 = inits[c.seed]
            return [
                w1.clone().requires_grad_(),
                torch.zeros(HIDDEN, requires_grad=True),
                w2.clone().requires_grad_(),
                torch.zeros(10, requires_grad=True),
            ]

        def losses(params: list[list[Tensor]], t: int) -> Tensor:
            parts = []
            for s in seeds:
                x, y = data[s][0], data[s][1]
                rows = batches[s][t - 1]
                logits = forward([params[i] for i in members[s]], x[rows])
                parts.append(per_copy_loss(logits, y[rows]))
            return torch.cat(parts)[order]

        def evaluated(t: int) -> bool:
            return t > 0 and (t % self.every == 0 or t == steps)

        def watch(params: list[list[Tensor]], t: int) -> None:
            if not evaluated(t):
                return
            with torch.no_grad():
                for s in seeds:
                    x_tr, y_tr, x_te, y_te = data[s]
                    group = [params[i] for i in members[s]]
                    values = {}
                    for split, x, y in (("train", x_tr, y_tr), ("test", x_te, y_te)):
                        logits = forward(group, x)
                        values[f"{split}_loss"] = per_copy_loss(logits, y).tolist()
                        values[f"{split}_acc"] = (logits.argmax(-1) == y).float().mean(1).tolist()
                    for j, i in enumerate(members[s]):
                        evals[i].append({"step": t} | {k: v[j] for k, v in values.items()})

        trace = run_grid(
            spec, copies, steps, init=init, losses=losses, watch=watch, evaluate_at=evaluated
        )
        out = []
        keys = ("train_loss", "test_loss", "train_acc", "test_acc")
        for i in range(len(copies)):
            rows = evals[i]
            curves = {"eval_step": [r["step"] for r in rows]} | {
                k: [r[k] for r in rows] for k in keys
            }
            metrics = {k: rows[-1][k] if math.isfinite(rows[-1][k]) else math.inf for k in keys}
            metrics |= self.copy_metrics(trace, i, curves, steps)
            out.append(CopyResult(trace.column(i), curves, metrics))
        return out


class AdamMlp(Scenario):
    name = "digits"
    section = "Adam"
    experiment = "digits"
    title = "Adam trains a real network faster than SGD and AdaGrad"
    claim = (
        "On a multilayer network Adam, momentum and RMSprop's scaling together, trains faster "
        "than plain SGD and than AdaGrad: with each at its tuned lr and the same budget, its "
        "training loss is lower throughout."
    )
    kind = "tuned performance (same grid and budget, several seeds)"
    reason = (
        "Kingma & Ba (2015, §6.2, Fig. 2) report Adam's training cost on a multilayer network "
        "(MNIST) below SGD's and AdaGrad's at every point of training. Here 'lower "
        "throughout' is summed up by the mean minibatch training loss over the run (the area "
        "under the curve), each optimizer at the lr of the shared grid that minimises it, "
        "averaged over the seeds (test set untouched)."
    )
    participants = ("SGD", "Adagrad", "Adam")
    criteria = (
        "tuned: Adam's mean training loss over the run is below SGD's, in every seed",
        "tuned: Adam's mean training loss over the run is below AdaGrad's, in every seed",
    )

    def judge(self, runs: dict[str, Run]) -> list[Check]:
        adam = runs["Adam"].metrics["score"]
        checks = []
        for k, other in enumerate(("SGD", "Adagrad")):
            theirs = runs[other].metrics["score"]
            pairs = ", ".join(f"{a:.3f} / {o:.3f}" for a, o in zip(adam, theirs, strict=True))
            checks.append(
                self.check(
                    k,
                    f"mean training loss Adam / {other} per seed: {pairs} (lr {runs['Adam'].lr:g} / "
                    f"{runs[other].lr:g})",
                    [a < o for a, o in zip(adam, theirs, strict=True)],
                    **{f"mean_train_loss_{other}": theirs, "mean_train_loss_Adam": adam},
                )
            )
        return checks

    def note(self, runs: dict[str, Run]) -> str:
        acc = ", ".join(
            f"{n} {100 * r.metric('test_acc'):.1f} %"
            for n, r in sorted(runs.items(), key=lambda kv: -kv[1].metric("test_acc"))
        )
        final = ", ".join(
            f"{n} {runs[n].metric('train_loss'):.3f}" for n in self.participants if n in runs
        )
        return (
            f"Not judged: the training loss at the last step ({final}; mean over seeds — a "
            "single point, noisy at these lrs) and the test set. Test accuracy after the "
            f"budget (mean over seeds): {acc}. A lower training loss need not mean a better "
            "test accuracy."
        )


EXPERIMENTS = (Digits(),)
SCENARIOS = (AdamMlp(),)
