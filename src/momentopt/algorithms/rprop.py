"""Rprop: steps of the gradient's sign, with a step size per element that grows while the
sign holds and shrinks where it flips."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor

from ..rules import Maximize, ResilientStep, UnitStepSize
from .checks import require
from .hyperparameters import (
    CAPTURABLE,
    DIFFERENTIABLE,
    FOREACH,
    LR,
    MAXIMIZE,
    Hyperparameter,
    HyperparameterTable,
)
from .options import StatePrecision, with_options
from .table_driven import TableDrivenOptimizer
from .torch_compat import torch_recipe


def _check_etas(group: Mapping[str, Any]) -> None:
    """torch's ``0 < etaminus < 1 < etaplus`` (its chain of comparisons, so a value that does
    not compare raises TypeError, and a missing one IndexError)."""
    etas = group["etas"]
    require(
        0.0 < etas[0] < 1.0 < etas[1],
        f"Invalid eta values: {etas[0]}, {etas[1]}",
        "0 < etas[0] < 1 < etas[1]",
    )


HYPERPARAMETERS = HyperparameterTable(
    LR.of(1e-2, since="<= 0.4"),
    Hyperparameter("etas", (0.5, 1.2), since="<= 0.4", check=_check_etas),
    Hyperparameter("step_sizes", (1e-6, 50), since="<= 0.4"),
    FOREACH.of(since="1.12", on_load=None),
    MAXIMIZE.of(since="1.12", on_load=False),
    DIFFERENTIABLE.of(since="1.13 or 2.0", on_load=False),
    CAPTURABLE.of(since="2.2 or 2.3", on_load=False),
    checks=("lr", "etas"),
)
"""``torch.optim.Rprop``'s hyperparameters (it has no fused implementation; ``step_sizes`` is
not checked)."""


class Rprop(TableDrivenOptimizer):
    """Rprop, a drop-in for ``torch.optim.Rprop`` (Riedmiller & Braun, "A Direct Adaptive
    Method for Faster Backpropagation Learning: The RPROP Algorithm", ICNN 1993).

    .. math::
        s = \\operatorname{sign}(g_t \\, g_{t−1}), \\qquad
        Δ_t = \\operatorname{clamp}(Δ_{t−1} \\cdot \\{η_+, η_-, 1\\}_{s > 0,\\, s < 0,\\,
        s = 0},\\; Δ_{min},\\; Δ_{max}),

        g_t ← 0 \\text{ where } s < 0, \\qquad w_t = w_{t−1} − \\operatorname{sign}(g_t) \\, Δ_t

    (``g`` negated under ``maximize``; ``Δ₁ = lr``, for a complex parameter in both its real
    and imaginary parts). State ``step``, ``prev``, ``step_size``.
    """

    recipe = torch_recipe(ResilientStep(), gradient=(Maximize(),), schedule=(UnitStepSize(),))
    hyperparameter_table: ClassVar[HyperparameterTable] = HYPERPARAMETERS

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-2,
        etas: tuple[float, float] = (0.5, 1.2),
        step_sizes: tuple[float, float] = (1e-6, 50),
        *,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        cautious: bool = False,
        state_precision: StatePrecision = None,
    ) -> None:
        table = self.hyperparameter_table
        defaults = table.defaults_from(locals())
        table.check_values(defaults)
        super().__init__(params, with_options(defaults, cautious, state_precision))

    def check_step_group(self, group: Mapping[str, Any]) -> None:
        """torch's step unpacks ``etas`` and ``step_sizes`` before anything: another length
        raises ValueError."""
        super().check_step_group(group)
        _etaminus, _etaplus = group["etas"]
        _smallest, _largest = group["step_sizes"]

    @classmethod
    def flag_defaults(cls) -> dict[str, Any]:
        """Group keys filled in when a loaded state_dict predates them (torch's list)."""
        return cls.hyperparameter_table.load_defaults()
