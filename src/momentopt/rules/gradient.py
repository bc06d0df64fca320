"""Step 1 rules: the gradient that the moments see, and decay of the weights."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..engine.bundle import Bundle
from ..engine.tensorlist import Tensors
from .base import GradientRule


class Maximize(GradientRule):
    """``g ← −g`` when the group's ``maximize`` flag is set (ascend instead of descend)."""

    hyperparameters = {"maximize": False}

    def apply(self, b: Bundle, g: Tensors) -> Tensors:
        return g.neg() if b.hp["maximize"] else g

    def formula(self, group: Mapping[str, Any]) -> str:
        return "g ← −∇f(w)   (maximize)" if group["maximize"] else "g ← ∇f(w)"


class WeightDecay(GradientRule):
    """L2 weight decay λ, coupled or decoupled.

    coupled (L2 in the loss):   ``g ← g + λ·w``
    decoupled (AdamW):          ``w ← w·(1 − α·λ)``, ``g`` unchanged

    The group's ``decoupled_weight_decay`` flag chooses; ``decoupled`` fixes the choice for
    recipes that have no such flag. Coupled decay never takes a sparse gradient: with
    ``sparse_ok=False`` it is refused with torch's Adagrad message, otherwise with the error of
    torch's ``grad.add(param)`` (torch's SGD).
    """

    hyperparameters = {"weight_decay": 0.0}

    def __init__(self, decoupled: bool | None = None, sparse_ok: bool = True) -> None:
        self.decoupled = decoupled
        self.sparse_ok = sparse_ok

    def is_decoupled(self, group: Mapping[str, Any]) -> bool:
        if self.decoupled is not None:
            return self.decoupled
        return bool(group.get("decoupled_weight_decay", False))

    def check_sparse(self, group: Mapping[str, Any]) -> None:
        if group["weight_decay"] != 0 and not self.is_decoupled(group):
            raise RuntimeError(
                "add(sparse, dense) is not supported. Use add(dense, sparse) instead."
                if self.sparse_ok
                else "weight_decay option is not compatible with sparse gradients"
            )

    def apply(self, b: Bundle, g: Tensors) -> Tensors:
        decay = b.hp["weight_decay"]
        if decay == 0:
            return g
        if self.is_decoupled(b.hp):
            b.param.mul_(1 - b.hp["lr"] * decay)
            return g
        if g.is_sparse and not self.sparse_ok:
            raise RuntimeError("weight_decay option is not compatible with sparse gradients")
        return g.add(b.param, alpha=decay)

    def formula(self, group: Mapping[str, Any]) -> str:
        if group["weight_decay"] == 0:
            return ""
        if self.is_decoupled(group):
            return f"w ← w·(1 − α·λ)   (decoupled decay, λ={group['weight_decay']})"
        return f"g ← g + λ·w   (coupled L2 decay, λ={group['weight_decay']})"

    def __repr__(self) -> str:
        return f"WeightDecay(decoupled={self.decoupled})"
