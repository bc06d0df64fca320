"""NAdam: Adam's second moment with a Nesterov-mixed, scheduled first moment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ..engine.optimizer import RecipeOptimizer
from ..engine.recipe import Recipe
from ..rules import BiasCorrectedSquaredAverage, NesterovAverage
from .checks import check_betas, check_eps, check_lr, check_weight_decay, require


class NAdam(RecipeOptimizer):
    """NAdam, a drop-in for ``torch.optim.NAdam`` (momentum_decay, decoupled weight decay).

    ``μ_t = β1·(1 − ½·0.96^(t·ψ))``; ``m ← β1·m + (1−β1)·g``; ``v ← β2·v + (1−β2)·g²``;
    ``w ← w − α·[(1−μ_t)/(1−Πμ)·g + μ_{t+1}/(1−Πμ·μ_{t+1})·m] / (√(v/(1−β2^t)) + ε)``.
    """

    recipe = Recipe(second=BiasCorrectedSquaredAverage(), first=NesterovAverage())

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum_decay": momentum_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
        }
        self.check_hyperparameters(defaults)
        super().__init__(params, defaults)

    @classmethod
    def check_hyperparameters(cls, group: Mapping[str, Any]) -> None:
        """Every check the constructor makes of ``group``'s values, with torch's messages."""
        check_lr(group["lr"])
        check_eps(group["eps"])
        check_betas(group["betas"])
        check_weight_decay(group["weight_decay"])
        momentum_decay = group["momentum_decay"]
        require(
            0.0 <= momentum_decay,
            f"Invalid momentum_decay value: {momentum_decay}",
            "momentum_decay >= 0",
        )

    def check_step_group(self, group: Mapping[str, Any]) -> None:
        """torch's step unpacks ``betas`` before anything: another length raises ValueError."""
        super().check_step_group(group)
        _beta1, _beta2 = group["betas"]

    def check_step_update(self, group: Mapping[str, Any]) -> None:
        """torch's NAdam takes tensor betas unchanged, and its update refuses those it cannot
        use: a 1-element but not 0-d tensor (``mu_product *= mu`` cannot broadcast), and any
        tensor on the multi-tensor path (its foreach kernels take no tensor scalars)."""
        super().check_step_update(group)
        tensors = [b for b in group["betas"] if isinstance(b, Tensor)]
        if not tensors:
            return
        shaped = any(b.dim() > 0 for b in tensors)
        if group.get("foreach"):
            error = TypeError if shaped else RuntimeError
            raise error("NAdam's multi-tensor step takes betas as numbers, not tensors (torch's too)")
        if shaped:
            raise RuntimeError("output with shape [] doesn't match the broadcast shape [1]")

    @classmethod
    def flag_defaults(cls) -> dict[str, Any]:
        return {
            "maximize": False,
            "foreach": None,
            "capturable": False,
            "differentiable": False,
            "decoupled_weight_decay": False,
        }
