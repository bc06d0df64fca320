"""Step 1 rules: the gradient that the moments see, and decay of the weights."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import GradientRule
from .contract import UpdateView


class Maximize(GradientRule):
    """``g ← −g`` when the group's ``maximize`` flag is set (ascend instead of descend; a
    group without the flag descends)."""

    hyperparameters = {"maximize": False}

    def apply(self, view: UpdateView, g: Any) -> Any:
        return g.neg() if view.group.get("maximize", False) else g

    def formula(self, group: Mapping[str, Any]) -> str:
        return "g ← −∇f(w)   (maximize)" if group.get("maximize", False) else "g ← ∇f(w)"


class WeightDecay(GradientRule):
    """L2 weight decay λ, coupled or decoupled.

    .. math::
        \\text{coupled (L2 in the loss):}\\quad g \\leftarrow g + λ w \\qquad
        \\text{decoupled:}\\quad w \\leftarrow w (1 − α λ)

    Decoupled decay is from Loshchilov & Hutter, "Decoupled Weight Decay Regularization"
    (ICLR 2019). The group's ``decoupled_weight_decay`` flag chooses; ``decoupled`` fixes the
    choice for recipes that have no such flag. Coupled decay makes a sparse gradient dense.
    """

    hyperparameters = {"weight_decay": 0.0}

    def __init__(self, decoupled: bool | None = None) -> None:
        self.decoupled = decoupled

    def is_decoupled(self, group: Mapping[str, Any]) -> bool:
        if self.decoupled is not None:
            return self.decoupled
        return bool(group.get("decoupled_weight_decay", False))

    def densifies_sparse(self, group: Mapping[str, Any]) -> bool:
        return group["weight_decay"] != 0 and not self.is_decoupled(group)

    def apply(self, view: UpdateView, g: Any) -> Any:
        decay = view.group["weight_decay"]
        if decay == 0:
            return g
        if self.is_decoupled(view.group):
            view.param.mul_(1 - view.group["lr"] * decay)
            return g
        return g.add(view.param, alpha=decay)

    def formula(self, group: Mapping[str, Any]) -> str:
        if group["weight_decay"] == 0:
            return ""
        if self.is_decoupled(group):
            return f"w ← w·(1 − α·λ)   (decoupled decay, λ={group['weight_decay']})"
        return f"g ← g + λ·w   (coupled L2 decay, λ={group['weight_decay']})"

    def __repr__(self) -> str:
        return f"WeightDecay(decoupled={self.decoupled})"
