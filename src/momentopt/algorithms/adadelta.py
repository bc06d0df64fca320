"""AdaDelta: ``V = E[g²]``, ``m = g·√(E[Δw²]+ε)``, step ``α·m/√(V+ε)``."""

from __future__ import annotations

from collections.abc import Mapping
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
        self.check_hyperparameters(defaults)
        super().__init__(params, defaults)

    @classmethod
    def check_hyperparameters(cls, group: Mapping[str, Any]) -> None:
        """Every check the constructor makes of ``group``'s values, with torch's messages."""
        check_lr(group["lr"])
        rho = group["rho"]
        require(0.0 <= rho <= 1.0, f"Invalid rho value: {rho}", "0 <= rho <= 1")
        check_eps(group["eps"])
        check_weight_decay(group["weight_decay"])

    @classmethod
    def flag_defaults(cls) -> dict[str, Any]:
        return {"foreach": None, "maximize": False, "differentiable": False, "capturable": False}
