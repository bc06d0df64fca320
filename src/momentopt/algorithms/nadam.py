"""NAdam: Adam's second moment with a Nesterov-mixed, scheduled first moment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor

from ..rules import BiasCorrectedSquaredAverage, NesterovAverage
from .hyperparameters import (
    BETAS,
    CAPTURABLE,
    DECOUPLED_WEIGHT_DECAY,
    DIFFERENTIABLE,
    EPS,
    FOREACH,
    LR,
    MAXIMIZE,
    MOMENTUM_DECAY,
    WEIGHT_DECAY,
    HyperparameterTable,
)
from .options import StatePrecision, with_options
from .table_driven import TableDrivenOptimizer
from .torch_compat import torch_recipe

HYPERPARAMETERS = HyperparameterTable(
    LR.of(2e-3, since="1.10"),
    BETAS.of(since="1.10"),
    EPS.of(1e-8, since="1.10"),
    WEIGHT_DECAY.of(since="1.10"),
    MOMENTUM_DECAY.of(4e-3, since="1.10"),
    DECOUPLED_WEIGHT_DECAY.of(since="2.1", on_load=False),
    MAXIMIZE.of(since="> 2.2", on_load=False),
    FOREACH.of(since="2.0", on_load=None),
    CAPTURABLE.of(since="2.1", on_load=False),
    DIFFERENTIABLE.of(since="2.0", on_load=False),
    checks=("lr", "eps", "betas", "weight_decay", "momentum_decay"),
    load_order=("maximize", "foreach", "capturable", "differentiable", "decoupled_weight_decay"),
)
"""``torch.optim.NAdam``'s hyperparameters (it has no fused implementation)."""


class NAdam(TableDrivenOptimizer):
    """NAdam, a drop-in for ``torch.optim.NAdam`` (momentum_decay, decoupled weight decay).

    ``μ_t = β1·(1 − ½·0.96^(t·ψ))``; ``m ← β1·m + (1−β1)·g``; ``v ← β2·v + (1−β2)·g²``;
    ``w ← w − α·[(1−μ_t)/(1−Πμ)·g + μ_{t+1}/(1−Πμ·μ_{t+1})·m] / (√(v/(1−β2^t)) + ε)``.
    """

    recipe = torch_recipe(NesterovAverage(), BiasCorrectedSquaredAverage(root_of_corrected=True))
    hyperparameter_table: ClassVar[HyperparameterTable] = HYPERPARAMETERS

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
        cautious: bool = False,
        state_precision: StatePrecision = None,
    ) -> None:
        table = self.hyperparameter_table
        defaults = table.defaults_from(locals())
        table.check_values(defaults)
        super().__init__(params, with_options(defaults, cautious, state_precision))

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
            raise error(
                "NAdam's multi-tensor step takes betas as numbers, not tensors (torch's too)"
            )
        if shaped:
            raise RuntimeError("output with shape [] doesn't match the broadcast shape [1]")

    @classmethod
    def flag_defaults(cls) -> dict[str, Any]:
        """Group keys filled in when a loaded state_dict predates them (torch's list)."""
        return cls.hyperparameter_table.load_defaults()
