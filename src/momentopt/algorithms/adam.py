"""Adam and AdamW: ``m = EMA(g)``, ``V = EMA(g²)``, both bias-corrected; AMSGrad option."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor

from ..engine.optimizer import RecipeOptimizer
from ..engine.recipe import Recipe
from ..rules import BiasCorrectedAverage, BiasCorrectedSquaredAverage
from .checks import (
    check_betas,
    check_eps,
    check_group_flags,
    check_tensor_lr,
    check_weight_decay,
    require,
)


def _check_tensor_hyperparameter(name: str, value: Any, foreach: Any, capturable: bool) -> None:
    if isinstance(value, Tensor):
        require(
            not (foreach and not capturable),
            f"{name} as a Tensor is not supported for capturable=False and foreach=True",
            f"{name} as a float, or capturable=True, or foreach not True",
        )
        require(value.numel() == 1, f"Tensor {name} must be 1-element", f"{name} has one element")


def _squeeze(value: Any) -> Any:
    return value.squeeze() if isinstance(value, Tensor) and value.dim() != 0 else value


class Adam(RecipeOptimizer):
    """Adam, a drop-in for ``torch.optim.Adam`` (AMSGrad, decoupled weight decay).

    ``m ← β1·m + (1−β1)·g``; ``v ← β2·v + (1−β2)·g²``;
    ``w ← w − α/(1−β1^t) · m/(√(v/(1−β2^t)) + ε)``.
    """

    recipe = Recipe(second=BiasCorrectedSquaredAverage(), first=BiasCorrectedAverage())
    sparse_message = "Adam does not support sparse gradients, please consider SparseAdam instead"

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
            "fused": fused,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        self._check_values(defaults)
        defaults["betas"] = tuple(_squeeze(b) for b in betas)
        super().__init__(params, defaults)
        check_group_flags(defaults)

    @classmethod
    def _check_values(cls, group: Mapping[str, Any]) -> None:
        """The checks torch makes before it looks at the parameters (the flags come after)."""
        lr, betas, foreach, capturable = group["lr"], group["betas"], group["foreach"], group["capturable"]
        if isinstance(lr, Tensor):
            _check_tensor_hyperparameter("lr", lr, foreach, capturable)
        check_tensor_lr(lr)
        require(0.0 <= lr, f"Invalid learning rate: {lr}", "lr >= 0")
        check_eps(group["eps"])
        check_betas(betas)
        check_weight_decay(group["weight_decay"])
        require(
            (isinstance(betas[0], float) and isinstance(betas[1], float))
            or (isinstance(betas[0], Tensor) and isinstance(betas[1], Tensor)),
            "betas must be either both floats or both Tensors",
            "betas as two floats or two 1-element tensors",
        )
        for i in (0, 1):
            _check_tensor_hyperparameter(f"betas[{i}]", betas[i], foreach, capturable)

    @classmethod
    def check_hyperparameters(cls, group: Mapping[str, Any]) -> None:
        """Every check the constructor makes of ``group``'s values, with torch's messages."""
        cls._check_values(group)
        check_group_flags(group)

    squeezed_hyperparameters: ClassVar[tuple[str, ...]] = ("lr", "betas")

    def check_step_group(self, group: Mapping[str, Any]) -> None:
        """torch's step unpacks ``betas`` before anything: another length raises ValueError."""
        super().check_step_group(group)
        _beta1, _beta2 = group["betas"]

    @classmethod
    def flag_defaults(cls) -> dict[str, Any]:
        return {
            "amsgrad": False,
            "maximize": False,
            "foreach": None,
            "capturable": False,
            "differentiable": False,
            "decoupled_weight_decay": False,
            "fused": None,
        }


class AdamW(Adam):
    """AdamW, a drop-in for ``torch.optim.AdamW``: Adam with decoupled decay
    ``w ← w·(1 − α·λ)`` (default λ = 0.01)."""

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
