"""SGD, with momentum, dampening and Nesterov: ``m = g`` or heavy ball; ``V = 1``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..engine.optimizer import RecipeOptimizer
from ..engine.recipe import Recipe
from ..engine.selection import check_fused_param
from ..rules import HeavyBall
from .checks import check_group_flags, check_tensor_lr, require


class SGD(RecipeOptimizer):
    """Stochastic gradient descent, a drop-in for ``torch.optim.SGD``.

    ``b ← μ·b + (1−dampening)·g`` (``b₁ = g``); ``m = b`` or ``g + μ·b`` (nesterov);
    ``w ← w − α·m``.
    """

    recipe = Recipe(first=HeavyBall(), counts_steps=False)
    supports_sparse: ClassVar[bool] = True
    foreach_differentiable: ClassVar[bool] = True

    def check_fused_params(self, group: Mapping[str, Any], params: list[Tensor]) -> None:
        """torch's SGD checks the first parameter with a gradient, once; a later one that is
        not floating point meets its kernel's NotImplementedError (raised here before
        anything changes)."""
        if not getattr(self, "_fused_params_checked", False):
            check_fused_param(params[0])
            self._fused_params_checked = True
        for p in params:
            if not torch.is_floating_point(p):
                raise NotImplementedError(f'"fused_sgd_kernel" not implemented for {p.dtype}')
    fused_sparse_message = "`_fused_sgd` does not support sparse gradients"

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float | Tensor = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
            "foreach": foreach,
            "differentiable": differentiable,
            "fused": fused,
        }
        self._check_values(defaults)
        super().__init__(params, defaults)
        check_group_flags(defaults)

    @classmethod
    def _check_values(cls, group: Mapping[str, Any]) -> None:
        """The checks torch makes before it looks at the parameters (the flags come after
        them); ``lr < 0`` etc. as torch writes them, so NaN passes here as it does there."""
        lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
        check_tensor_lr(lr)
        require(not lr < 0.0, f"Invalid learning rate: {lr}", "lr >= 0")
        require(not momentum < 0.0, f"Invalid momentum value: {momentum}", "momentum >= 0")
        require(
            not weight_decay < 0.0, f"Invalid weight_decay value: {weight_decay}", "weight_decay >= 0"
        )
        require(
            not (group["nesterov"] and (momentum <= 0 or group["dampening"] != 0)),
            "Nesterov momentum requires a momentum and zero dampening",
            "nesterov=True with momentum > 0 and dampening == 0",
        )

    @classmethod
    def check_hyperparameters(cls, group: Mapping[str, Any]) -> None:
        """Every check the constructor makes of ``group``'s values, with torch's messages."""
        cls._check_values(group)
        check_group_flags(group)

    @classmethod
    def flag_defaults(cls) -> dict[str, Any]:
        return {
            "nesterov": False,
            "maximize": False,
            "foreach": None,
            "differentiable": False,
            "fused": False,
        }
