"""Adafactor: a factored second moment (row and column averages of ``g²`` per matrix), update
clipping and a step size relative to the weights' scale."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..rules import FactoredSquaredAverage, Maximize, RelativeStepSize, RmsClipped, WeightDecay
from .checks import require
from .hyperparameters import FOREACH, MAXIMIZE, Bound, Hyperparameter, HyperparameterTable
from .options import StatePrecision, with_options
from .table_driven import TableDrivenOptimizer
from .torch_compat import refuse_complex_and_sparse, torch_recipe


def _check_beta2_decay(group: Mapping[str, Any]) -> None:
    value = group["beta2_decay"]
    require(bool(0.0 >= value), f"beta2_decay should be <= 0 but is: {value}", "beta2_decay <= 0")


def _check_eps(group: Mapping[str, Any]) -> None:
    eps = group["eps"]  # indexed as torch does (a float raises its TypeError)
    require(
        eps[0] is None or bool(0.0 <= eps[0]),
        f"epsilon1 should be >= 0 but is: {eps[0]}",
        "eps[0] None or >= 0",
    )
    require(bool(0.0 <= eps[1]), f"epsilon2 should be >= 0 but is: {eps[1]}", "eps[1] >= 0")


def _check_d(group: Mapping[str, Any]) -> None:
    value = group["d"]
    require(bool(1.0 <= value), f"Clipping threshold d should be >= 1 but is: {value}", "d >= 1")


HYPERPARAMETERS = HyperparameterTable(
    Hyperparameter(
        "lr",
        1e-2,
        since="2.5",
        bound=Bound("Learning rate should be >= 0 but is: {value}"),
        one_element=True,
    ),
    Hyperparameter("beta2_decay", -0.8, since="2.5", check=_check_beta2_decay),
    Hyperparameter("eps", (None, 1e-3), since="2.5", check=_check_eps),
    Hyperparameter("d", 1.0, since="2.5", check=_check_d),
    Hyperparameter(
        "weight_decay", 0.0, since="2.5", bound=Bound("weight_decay should be >= 0 but is: {value}")
    ),
    FOREACH.of(since="2.5", on_load=None),
    MAXIMIZE.of(since="2.5"),
    checks=("lr", "beta2_decay", "eps", "d", "weight_decay"),
)
"""``torch.optim.Adafactor``'s hyperparameters (a for-loop and a foreach implementation, no
``differentiable``)."""


class Adafactor(TableDrivenOptimizer):
    """Adafactor, a drop-in for ``torch.optim.Adafactor`` (Shazeer & Stern, ICML 2018, with
    torch's use of ``lr`` and ``ε₁``).

    ``β̂₂ = 1 − t^τ``; for a matrix ``R ← β̂₂·R + (1−β̂₂)·mean_cols(g²)``,
    ``C ← β̂₂·C + (1−β̂₂)·mean_rows(g²)``, ``V̂ = R·C/max(mean(R), ε₁)`` (a vector keeps
    ``V̂ ← β̂₂·V̂ + (1−β̂₂)·g²``); ``u = g/max(√V̂, ε₁)``, ``û = u/max(1, RMS(u)/d)``;
    ``w ← w·(1 − α·λ) − max(ε₂, RMS(w))·min(α, 1/√t)·û``.
    """

    recipe = torch_recipe(
        RmsClipped(into_denominator=True),
        FactoredSquaredAverage(),
        gradient=(Maximize(), WeightDecay(decoupled=True)),
        schedule=(RelativeStepSize(),),
    )
    hyperparameter_table: ClassVar[HyperparameterTable] = HYPERPARAMETERS

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-2,
        beta2_decay: float = -0.8,
        eps: tuple[float | None, float] = (None, 1e-3),
        d: float = 1.0,
        weight_decay: float = 0.0,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
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

    def check_step_group(self, group: Mapping[str, Any]) -> None:
        """torch's refusals: complex parameters and sparse gradients, parameter by parameter;
        then ``torch.amp.GradScaler``'s ``grad_scale``/``found_inf`` (Adafactor has no fused
        implementation to hand them to)."""
        refuse_complex_and_sparse("Adafactor", group)
        scaling = (getattr(self, "grad_scale", None), getattr(self, "found_inf", None))
        if any(value is not None for value in scaling):
            raise AssertionError("Grad scaling should occur outside of optimizer.step()")

    def step_hyperparameters(
        self, group: Mapping[str, Any], params: list[Tensor]
    ) -> Mapping[str, Any]:
        """``eps=(None, ε₂)``: torch takes ε₁ from the dtype of the group's first parameter
        with a gradient, for every parameter of the group."""
        eps1, eps2 = group["eps"]
        if eps1 is not None:
            return group
        return {**group, "eps": (torch.finfo(params[0].dtype).eps, eps2)}
