"""Adamax: Adam's first moment over an infinity-norm second moment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor

from ..rules import BiasCorrectedAverage, InfinityNorm
from .hyperparameters import (
    BETAS,
    CAPTURABLE,
    DIFFERENTIABLE,
    EPS,
    FOREACH,
    LR,
    MAXIMIZE,
    WEIGHT_DECAY,
    HyperparameterTable,
)
from .options import StatePrecision, with_options
from .table_driven import TableDrivenOptimizer
from .torch_compat import loop_stand_in, shaped_betas, torch_recipe

HYPERPARAMETERS = HyperparameterTable(
    LR.of(2e-3, since="<= 0.4"),
    BETAS.of(since="<= 0.4"),
    EPS.of(1e-8, since="<= 0.4"),
    WEIGHT_DECAY.of(since="<= 0.4"),
    FOREACH.of(since="1.12", on_load=None),
    MAXIMIZE.of(since="<= 1.13", on_load=False),
    DIFFERENTIABLE.of(since="1.13", on_load=False),
    CAPTURABLE.of(since="<= 2.1", on_load=False),
    checks=("lr", "eps", "betas", "weight_decay"),
)
"""``torch.optim.Adamax``'s hyperparameters (it has no fused implementation)."""


class Adamax(TableDrivenOptimizer):
    """Adamax, a drop-in for ``torch.optim.Adamax`` (Kingma & Ba, "Adam: A Method for
    Stochastic Optimization", ICLR 2015, section 7.1: Adam with the infinity norm).

    .. math::
        m_t = β_1 m_{t−1} + (1 − β_1) g_t, \\qquad u_t = \\max(β_2 u_{t−1}, |g_t| + ε),

        w_t = w_{t−1} − \\frac{α}{1 − β_1^t} \\frac{m_t}{u_t}

    (``g`` with coupled weight decay ``+ λ·w``, negated under ``maximize``). State ``step``,
    ``exp_avg``, ``exp_inf``.
    """

    recipe = torch_recipe(BiasCorrectedAverage(), InfinityNorm())
    hyperparameter_table: ClassVar[HyperparameterTable] = HYPERPARAMETERS

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
        cautious: bool = False,
        state_precision: StatePrecision = None,
    ) -> None:
        table = self.hyperparameter_table
        defaults = table.defaults_from(locals())
        table.check_values(defaults)
        super().__init__(params, with_options(defaults, cautious, state_precision))

    squeezed_hyperparameters: ClassVar[tuple[str, ...]] = ("lr", "betas")

    def check_step_group(self, group: Mapping[str, Any]) -> None:
        """torch's step unpacks ``betas`` before anything: another length raises ValueError."""
        super().check_step_group(group)
        _beta1, _beta2 = group["betas"]

    def check_step_update(self, group: Mapping[str, Any]) -> None:
        """torch's loop uses a beta tensor of one element that is not 0-d as it is, and its
        ops refuse it: as a lerp weight of another dtype, where it does not broadcast, as the
        step size (a number). Those ops on a stand-in raise torch's error; betas they take
        are computed with as 0-d tensors (the same numbers)."""
        super().check_step_update(group)
        if shaped_betas(group):
            beta1, beta2 = group["betas"]
            w = loop_stand_in(group)
            w.lerp_(w, 1 - beta1)
            w.mul_(beta2)
            w.addcdiv_(w, w, value=-(group["lr"] / (1 - beta1)))

    @classmethod
    def flag_defaults(cls) -> dict[str, Any]:
        """Group keys filled in when a loaded state_dict predates them (torch's list)."""
        return cls.hyperparameter_table.load_defaults()
