"""AdaGrad: ``m = g``, ``V = Σ g²``, learning rate ``α/(1+(t−1)·lr_decay)``."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from ..rules import AccumulatedSquares, InverseTimeDecay, NoFirstMoment
from .hyperparameters import (
    DIFFERENTIABLE,
    EPS,
    FOREACH,
    FUSED,
    INITIAL_ACCUMULATOR_VALUE,
    LR,
    LR_DECAY,
    MAXIMIZE,
    WEIGHT_DECAY,
    HyperparameterTable,
)
from .options import StatePrecision, with_options
from .table_driven import TableDrivenOptimizer
from .torch_compat import FUSED_ADAGRAD, torch_recipe

HYPERPARAMETERS = HyperparameterTable(
    LR.of(1e-2, since="<= 1.10"),
    LR_DECAY.of(0, since="<= 1.10"),
    EPS.of(1e-10, since="<= 1.10"),
    WEIGHT_DECAY.of(since="<= 1.10"),
    INITIAL_ACCUMULATOR_VALUE.of(0, since="<= 1.10"),
    FOREACH.of(since="1.12", on_load=None),
    MAXIMIZE.of(since="<= 1.12", on_load=False),
    DIFFERENTIABLE.of(since="1.13 or 2.0", on_load=False),
    FUSED.of(since="2.4", on_load=None),
    checks=("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"),
    checks_after_init=("fused",),
)
"""``torch.optim.Adagrad``'s hyperparameters."""


class Adagrad(TableDrivenOptimizer):
    """AdaGrad, a drop-in for ``torch.optim.Adagrad`` (sparse gradients included).

    ``V ← V + g²``; ``w ← w − α/(1+(t−1)·lr_decay) · g/(√V + ε)``.
    """

    recipe = torch_recipe(
        NoFirstMoment(),
        AccumulatedSquares(),
        schedule=(InverseTimeDecay(),),
        eager_state=True,
        fill_from_defaults=True,
    )
    torch_kernels = (FUSED_ADAGRAD,)
    sparse_densified_message = "weight_decay option is not compatible with sparse gradients"
    supports_sparse: ClassVar[bool] = True
    fused_sparse_message = "`fused` does not support sparse grad or complex param"
    hyperparameter_table: ClassVar[HyperparameterTable] = HYPERPARAMETERS

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
        cautious: bool = False,
        state_precision: StatePrecision = None,
    ) -> None:
        table = self.hyperparameter_table
        defaults = table.defaults_from(locals())
        table.check_values(defaults)
        super().__init__(params, with_options(defaults, cautious, state_precision))
        table.check_flags(defaults)

    @classmethod
    def flag_defaults(cls) -> dict[str, Any]:
        """Group keys filled in when a loaded state_dict predates them (torch's list)."""
        return cls.hyperparameter_table.load_defaults()

    def share_memory(self) -> None:
        """Move the ``sum`` accumulators to shared memory (for multiprocess training)."""
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["sum"].share_memory_()
