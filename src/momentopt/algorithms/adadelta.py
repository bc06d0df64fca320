"""AdaDelta: ``V = E[g²]``, ``m = g·√(E[Δw²]+ε)``, step ``α·m/√(V+ε)``."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from ..rules import DeltaScaledGradient, RootMeanSquare
from .hyperparameters import (
    CAPTURABLE,
    DIFFERENTIABLE,
    EPS,
    FOREACH,
    LR,
    MAXIMIZE,
    RHO,
    WEIGHT_DECAY,
    HyperparameterTable,
)
from .options import StatePrecision, with_options
from .table_driven import TableDrivenOptimizer
from .torch_compat import torch_recipe

HYPERPARAMETERS = HyperparameterTable(
    LR.of(1.0, since="<= 1.0"),
    RHO.of(0.9, since="<= 1.0"),
    EPS.of(1e-6, since="<= 1.0"),
    WEIGHT_DECAY.of(since="<= 1.0"),
    MAXIMIZE.of(since="1.12", on_load=False),
    CAPTURABLE.of(since="2.2 or 2.3", on_load=False),
    FOREACH.of(since="1.12", on_load=None),
    DIFFERENTIABLE.of(since="1.13 or 2.0", on_load=False),
    checks=("lr", "rho", "eps", "weight_decay"),
    load_order=("foreach", "maximize", "differentiable", "capturable"),
)
"""``torch.optim.Adadelta``'s hyperparameters (it has no fused implementation)."""


class Adadelta(TableDrivenOptimizer):
    """AdaDelta, a drop-in for ``torch.optim.Adadelta``.

    ``V ← ρ·V + (1−ρ)·g²``; ``Δ = √(U+ε)/√(V+ε)·g``; ``U ← ρ·U + (1−ρ)·Δ²``; ``w ← w − α·Δ``.
    """

    recipe = torch_recipe(DeltaScaledGradient(), RootMeanSquare())
    capturable_devices_include_xla: ClassVar[bool] = False
    hyperparameter_table: ClassVar[HyperparameterTable] = HYPERPARAMETERS

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
