"""RMSProp: ``V = EMA(g²)`` (centered: minus ``EMA(g)²``), momentum after scaling."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from ..rules import ScaledMomentum, SquaredAverage
from .hyperparameters import (
    ALPHA,
    CAPTURABLE,
    DIFFERENTIABLE,
    EPS,
    FOREACH,
    LR,
    MAXIMIZE,
    MOMENTUM,
    WEIGHT_DECAY,
    Hyperparameter,
    HyperparameterTable,
)
from .options import StatePrecision, with_options
from .table_driven import TableDrivenOptimizer
from .torch_compat import torch_recipe

HYPERPARAMETERS = HyperparameterTable(
    LR.of(1e-2, since="<= 1.2"),
    MOMENTUM.of(since="<= 1.2", on_load=0),
    ALPHA.of(0.99, since="<= 1.2"),
    EPS.of(1e-8, since="<= 1.2"),
    Hyperparameter("centered", False, since="<= 1.2", on_load=False),
    WEIGHT_DECAY.of(since="<= 1.2"),
    CAPTURABLE.of(since="2.3 or 2.4", on_load=False),
    FOREACH.of(since="1.12", on_load=None),
    MAXIMIZE.of(since="1.13", on_load=False),
    DIFFERENTIABLE.of(since="1.13", on_load=False),
    checks=("lr", "eps", "momentum", "weight_decay", "alpha"),
    load_order=("momentum", "centered", "foreach", "maximize", "differentiable", "capturable"),
)
"""``torch.optim.RMSprop``'s hyperparameters (it has no fused implementation)."""


class RMSprop(TableDrivenOptimizer):
    """RMSProp, a drop-in for ``torch.optim.RMSprop``.

    ``V ← α·V + (1−α)·g²``; ``b ← μ·b + g/(√V + ε)``; ``w ← w − lr·b``.
    """

    recipe = torch_recipe(ScaledMomentum(), SquaredAverage())
    hyperparameter_table: ClassVar[HyperparameterTable] = HYPERPARAMETERS

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
        *,
        cautious: bool = False,
        state_precision: StatePrecision = None,
    ) -> None:
        table = self.hyperparameter_table
        defaults = table.defaults_from(locals())
        table.check_values(defaults)
        super().__init__(params, with_options(defaults, cautious, state_precision))

    @classmethod
    def flag_defaults(cls) -> dict[str, Any]:
        """Group keys filled in when a loaded state_dict predates them (torch's list)."""
        return cls.hyperparameter_table.load_defaults()
