"""AdEMAMix: Adam with a second, slow momentum (Pagliardini, Ablin & Grangier, 2024), with the
warm-up schedules of its reference implementation (apple/ml-ademamix)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..rules import BiasCorrectedSquaredAverage, Maximize, MixedAverage, WeightDecay
from .checks import require
from .hyperparameters import (
    DIFFERENTIABLE,
    EPS,
    FOREACH,
    FUSED,
    LR,
    MAXIMIZE,
    WEIGHT_DECAY,
    Hyperparameter,
    HyperparameterTable,
)
from .options import StatePrecision, with_options
from .reference_compat import MOMENTOPT, reference_recipe
from .table_driven import TableDrivenOptimizer

ML_ADEMAMIX = "apple/ml-ademamix"


def _check_betas(group: Mapping[str, Any]) -> None:
    """The reference's ``0 <= betas[i] < 1`` for each of the three."""
    for i, beta in enumerate(group["betas"][:3]):
        require(
            0.0 <= beta < 1.0,
            f"Invalid beta parameter at index {i}: {beta}",
            f"0 <= betas[{i}] < 1",
        )


def _check_alpha(group: Mapping[str, Any]) -> None:
    alpha = group["alpha"]
    require(0.0 <= alpha, f"Invalid alpha value: {alpha}", "alpha >= 0")


HYPERPARAMETERS = HyperparameterTable(
    LR.of(1e-3, since=ML_ADEMAMIX),
    Hyperparameter("betas", (0.9, 0.999, 0.9999), since=ML_ADEMAMIX, check=_check_betas),
    Hyperparameter("eps", 1e-8, since=ML_ADEMAMIX, bound=EPS.bound),
    Hyperparameter("alpha", 2.0, since=ML_ADEMAMIX, check=_check_alpha),
    Hyperparameter("beta3_warmup", None, since=ML_ADEMAMIX),
    Hyperparameter("alpha_warmup", None, since=ML_ADEMAMIX),
    WEIGHT_DECAY.of(0.0, since=ML_ADEMAMIX),
    MAXIMIZE.of(since=MOMENTOPT, on_load=False),
    FOREACH.of(since=MOMENTOPT, on_load=None),
    DIFFERENTIABLE.of(since=MOMENTOPT, on_load=False),
    FUSED.of(since=MOMENTOPT, on_load=None),
    checks=("lr", "eps", "betas", "weight_decay", "alpha"),
    checks_after_init=("fused",),
)
"""AdEMAMix's hyperparameters, in the key order and with the checks (texts, order) of its
reference implementation, and torch's flags."""


class AdEMAMix(TableDrivenOptimizer):
    """AdEMAMix (Pagliardini, Ablin & Grangier, "The AdEMAMix Optimizer: Better, Faster,
    Older", 2024, Algorithm 1), with the α and β3 warm-ups of its reference implementation
    (apple/ml-ademamix).

    .. math::
        m_1 ← β_1 m_1 + (1 − β_1) g, \\quad m_2 ← β_3(t) m_2 + (1 − β_3(t)) g, \\quad
        ν ← β_2 ν + (1 − β_2) g^2,

        w ← w − α_t \\Big( \\frac{m_1/(1 − β_1^t) + α(t)\\, m_2}{\\sqrt{ν/(1 − β_2^t)} + ε}
        + λ w \\Big)

    (``betas`` = (β1, β2, β3); ``alpha`` α; ``alpha_warmup`` / ``beta3_warmup``: α(t) rises
    linearly from 0, β3(t) from β1 linearly in the half-life, over that many steps).
    State ``step``, ``exp_avg_fast`` (kept when β1 ≠ 0), ``exp_avg_slow``, ``exp_avg_sq``.
    """

    recipe = reference_recipe(
        MixedAverage(),
        BiasCorrectedSquaredAverage(),
        gradient=(Maximize(), WeightDecay(decoupled=True)),
        state_order=("exp_avg_fast", "exp_avg_slow", "exp_avg_sq"),
    )
    hyperparameter_table: ClassVar[HyperparameterTable] = HYPERPARAMETERS
    sparse_message = "AdEMAMix does not support sparse gradients."

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
        alpha: float = 2.0,
        beta3_warmup: int | None = None,
        alpha_warmup: int | None = None,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        cautious: bool = False,
        state_precision: StatePrecision = None,
    ) -> None:
        table = self.hyperparameter_table
        defaults = table.defaults_from(locals())
        table.check_values(defaults)
        super().__init__(params, with_options(defaults, cautious, state_precision))
        table.check_flags(defaults)

    def check_step_group(self, group: Mapping[str, Any]) -> None:
        """The step unpacks the three ``betas`` (another number of them: ValueError)."""
        super().check_step_group(group)
        _beta1, _beta2, _beta3 = group["betas"]

    @classmethod
    def flag_defaults(cls) -> dict[str, Any]:
        """Group keys filled in when a loaded state_dict lacks them (the reference's groups
        have none of momentopt's flags)."""
        return cls.hyperparameter_table.load_defaults()
