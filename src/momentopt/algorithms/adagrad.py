"""AdaGrad: ``m = g``, ``V = Σ g²``, learning rate ``α/(1+(t−1)·lr_decay)``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor

from ..engine.optimizer import RecipeOptimizer
from ..engine.recipe import Recipe
from ..rules import AccumulatedSquares, InverseTimeDecay, Maximize, WeightDecay
from .checks import check_eps, check_group_flags, check_lr, check_weight_decay, require


class Adagrad(RecipeOptimizer):
    """AdaGrad, a drop-in for ``torch.optim.Adagrad`` (sparse gradients included).

    ``V ← V + g²``; ``w ← w − α/(1+(t−1)·lr_decay) · g/(√V + ε)``.
    """

    recipe = Recipe(
        gradient=(Maximize(), WeightDecay(sparse_ok=False)),
        second=AccumulatedSquares(start_from_defaults=True),
        schedule=(InverseTimeDecay(),),
        eager_state=True,
    )
    supports_sparse: ClassVar[bool] = True
    fused_sparse_message = "`fused` does not support sparse grad or complex param"

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
            "fused": fused,
        }
        self._check_values(defaults)
        super().__init__(params, defaults)
        check_group_flags(defaults)

    @classmethod
    def _check_values(cls, group: Mapping[str, Any]) -> None:
        """The checks torch makes before it looks at the parameters (the flags come after)."""
        check_lr(group["lr"])
        lr_decay, initial = group["lr_decay"], group["initial_accumulator_value"]
        require(0.0 <= lr_decay, f"Invalid lr_decay value: {lr_decay}", "lr_decay >= 0")
        check_weight_decay(group["weight_decay"])
        require(
            0.0 <= initial,
            f"Invalid initial_accumulator_value value: {initial}",
            "initial_accumulator_value >= 0",
        )
        check_eps(group["eps"])

    @classmethod
    def check_hyperparameters(cls, group: Mapping[str, Any]) -> None:
        """Every check the constructor makes of ``group``'s values, with torch's messages."""
        cls._check_values(group)
        check_group_flags(group)

    @classmethod
    def flag_defaults(cls) -> dict[str, Any]:
        return {"foreach": None, "maximize": False, "differentiable": False, "fused": None}

    def share_memory(self) -> None:
        """Move the ``sum`` accumulators to shared memory (for multiprocess training)."""
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["sum"].share_memory_()
