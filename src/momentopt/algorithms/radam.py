"""RAdam: Adam's moments, the adaptive step rectified (and used only once its variance is
tractable)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor

from ..rules import BiasCorrectedAverage, Rectification, RectifiedSquaredAverage
from .hyperparameters import (
    BETAS,
    CAPTURABLE,
    DECOUPLED_WEIGHT_DECAY,
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
    LR.of(1e-3, since="1.10"),
    BETAS.of(since="1.10"),
    EPS.of(1e-8, since="1.10"),
    WEIGHT_DECAY.of(since="1.10"),
    MAXIMIZE.of(since="<= 2.1", on_load=False),
    FOREACH.of(since="2.0", on_load=None),
    CAPTURABLE.of(since="2.1", on_load=False),
    DECOUPLED_WEIGHT_DECAY.of(since="2.1", on_load=False),
    DIFFERENTIABLE.of(since="2.0", on_load=False),
    checks=("lr", "eps", "betas", "weight_decay"),
    load_order=("foreach", "maximize", "differentiable", "decoupled_weight_decay", "capturable"),
)
"""``torch.optim.RAdam``'s hyperparameters (it has no fused implementation)."""


class RAdam(TableDrivenOptimizer):
    """RAdam, a drop-in for ``torch.optim.RAdam`` (Liu et al., "On the Variance of the
    Adaptive Learning Rate and Beyond", ICLR 2020), with decoupled weight decay as an option.

    .. math::
        m_t = β_1 m_{t−1} + (1 − β_1) g_t, \\qquad v_t = β_2 v_{t−1} + (1 − β_2) g_t^2,
        \\qquad ρ_t = ρ_∞ − \\frac{2 t β_2^t}{1 − β_2^t}, \\quad ρ_∞ = \\frac{2}{1 − β_2} − 1,

        w_t = w_{t−1} − \\frac{α}{1 − β_1^t} m_t \\cdot
        \\begin{cases} r_t \\sqrt{1 − β_2^t} / (\\sqrt{v_t} + ε) & ρ_t > 5 \\\\
        1 & \\text{otherwise} \\end{cases}

    with the rectification ``r_t`` of :mod:`momentopt.rules.rectification`. State ``step``,
    ``exp_avg``, ``exp_avg_sq``.
    """

    recipe = torch_recipe(
        BiasCorrectedAverage(), RectifiedSquaredAverage(), schedule=(Rectification(),)
    )
    hyperparameter_table: ClassVar[HyperparameterTable] = HYPERPARAMETERS

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
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

    squeezed_hyperparameters: ClassVar[tuple[str, ...]] = ("lr", "betas")

    def check_step_group(self, group: Mapping[str, Any]) -> None:
        """torch's step unpacks ``betas`` before anything: another length raises ValueError."""
        super().check_step_group(group)
        _beta1, _beta2 = group["betas"]

    def check_step_update(self, group: Mapping[str, Any]) -> None:
        """torch's loop uses a beta tensor of one element that is not 0-d as it is, and its
        ops refuse it: as a lerp weight of another dtype, where it does not broadcast, as the
        ``value`` of ``addcmul_`` (a number). Those ops on a stand-in raise torch's error;
        betas they take are computed with as 0-d tensors (the same numbers)."""
        super().check_step_update(group)
        if shaped_betas(group):
            beta1, beta2 = group["betas"]
            w = loop_stand_in(group)
            w.lerp_(w, 1 - beta1)
            w.mul_(beta2).addcmul_(w, w, value=1 - beta2)
            w.add_(w / (1 - beta1) * group["lr"], alpha=-1.0)

    @classmethod
    def flag_defaults(cls) -> dict[str, Any]:
        """Group keys filled in when a loaded state_dict predates them (torch's list)."""
        return cls.hyperparameter_table.load_defaults()
