"""RMSProp: ``V = EMA(g²)`` (centered: minus ``EMA(g)²``), momentum after scaling."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ..engine.optimizer import RecipeOptimizer
from ..engine.recipe import Recipe
from ..rules import ScaledMomentum, SquaredAverage
from .checks import check_eps, check_lr, check_weight_decay, require


class RMSprop(RecipeOptimizer):
    """RMSProp, a drop-in for ``torch.optim.RMSprop``.

    ``V ← α·V + (1−α)·g²``; ``b ← μ·b + g/(√V + ε)``; ``w ← w − lr·b``.
    """

    recipe = Recipe(second=SquaredAverage(), first=ScaledMomentum())

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "capturable": capturable,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
        }
        self.check_hyperparameters(defaults)
        super().__init__(params, defaults)

    @classmethod
    def check_hyperparameters(cls, group: Mapping[str, Any]) -> None:
        """Every check the constructor makes of ``group``'s values, with torch's messages."""
        check_lr(group["lr"])
        check_eps(group["eps"])
        momentum, alpha = group["momentum"], group["alpha"]
        require(0.0 <= momentum, f"Invalid momentum value: {momentum}", "momentum >= 0")
        check_weight_decay(group["weight_decay"])
        require(0.0 <= alpha, f"Invalid alpha value: {alpha}", "alpha >= 0")

    @classmethod
    def flag_defaults(cls) -> dict[str, Any]:
        return {
            "momentum": 0,
            "centered": False,
            "foreach": None,
            "maximize": False,
            "differentiable": False,
            "capturable": False,
        }
