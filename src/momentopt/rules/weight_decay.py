"""Decoupled weight decay as the reference implementations of newer optimizers write it: relative
to the initial learning rate (Lion), or only once the first step moves the weights (ADOPT)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import GradientRule
from .contract import UpdateView


class RelativeWeightDecay(GradientRule):
    """Decoupled decay (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR
    2019) before the step, as lion-pytorch applies it:

    .. math::
        w ← w \\, (1 − α λ'), \\qquad λ' = λ / α_0 \\text{ with }
        \\texttt{decoupled\\_weight\\_decay}, \\text{ else } λ

    (α₀ = ``init_lr``, the constructor's learning rate): with ``decoupled_weight_decay`` the
    decay follows a schedule of the learning rate but not its size.
    """

    hyperparameters = {"weight_decay": 0.0, "decoupled_weight_decay": False, "init_lr": 1e-4}

    def apply(self, view: UpdateView, g: Any) -> Any:
        decay = view.group["weight_decay"]
        if view.group["decoupled_weight_decay"]:
            decay = decay / view.group["init_lr"]
        if decay != 0:
            view.param.mul_(1.0 - view.group["lr"] * decay)
        return g

    def formula(self, group: Mapping[str, Any]) -> str:
        if group["weight_decay"] == 0:
            return ""
        if group["decoupled_weight_decay"]:
            return f"w ← w·(1 − α·λ/α₀)   (λ={group['weight_decay']}, α₀ = init_lr)"
        return f"w ← w·(1 − α·λ)   (decoupled decay, λ={group['weight_decay']})"
