"""AdaDelta: ``V = E[g²]``, ``m = g·√(E[Δw²]+ε)``, step ``α·m/√(V+ε)``."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from ..engine.optimizer import RecipeOptimizer
from ..engine.recipe import Recipe
from ..rules import DeltaScaledGradient, RootMeanSquare
from .checks import check_eps, check_lr, check_weight_decay, require


class Adadelta(RecipeOptimizer):
    """AdaDelta, a drop-in for ``torch.optim.Adadelta``.

    ``V ← ρ·V + (1−ρ)·g²``; ``Δ = √(U+ε)/√(V+ε)·g``; ``U ← ρ·U + (1−ρ)·Δ²``; ``w ← w − α·Δ``.
    """

    recipe = Recipe(second=RootMeanSquare(), first=DeltaScaledGradient())
    capturable_devices_include_xla: ClassVar[bool] = False

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        capturable: bool = False,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        check_lr(lr)
        require(0.0 <= rho <= 1.0, f"Invalid rho value: {rho}", "0 <= rho <= 1")
        check_eps(eps)
        check_weight_decay(weight_decay)
        defaults = {
            "lr": lr,
            "rho": rho,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
            "capturable": capturable,
            "foreach": foreach,
            "differentiable": differentiable,
        }
        super().__init__(params, defaults)

    @classmethod
    def flag_defaults(cls) -> dict[str, Any]:
        return {"foreach": None, "maximize": False, "differentiable": False, "capturable": False}
