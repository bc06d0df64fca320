"""Lion: the sign of an interpolated momentum (Chen et al., 2023), as lion-pytorch 0.2.5 has it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..rules import InterpolatedMomentum, Maximize, RelativeWeightDecay, Sign
from .checks import require
from .hyperparameters import (
    DIFFERENTIABLE,
    FOREACH,
    FUSED,
    MAXIMIZE,
    Hyperparameter,
    HyperparameterTable,
)
from .options import StatePrecision, with_options
from .reference_compat import MOMENTOPT, reference_recipe
from .table_driven import TableDrivenOptimizer
from .torch_compat import refuse_complex_and_sparse

LION_PYTORCH = "lion-pytorch 0.2.5"


def _check_lr(group: Mapping[str, Any]) -> None:
    """lion-pytorch's ``assert lr > 0.``."""
    lr = group["lr"]
    require(lr > 0.0, f"Invalid learning rate: {lr}", "lr > 0", AssertionError)


def _check_betas(group: Mapping[str, Any]) -> None:
    """lion-pytorch's ``assert all(0 <= beta <= 1 for beta in betas)`` (betas of another
    length fail at the step, where they are unpacked, as in lion-pytorch)."""
    for i, beta in enumerate(group["betas"]):
        require(
            0.0 <= beta <= 1.0,
            f"Invalid beta parameter at index {i}: {beta}",
            f"0 <= betas[{i}] <= 1",
            AssertionError,
        )


HYPERPARAMETERS = HyperparameterTable(
    Hyperparameter("lr", 1e-4, since=LION_PYTORCH, check=_check_lr),
    Hyperparameter("betas", (0.9, 0.99), since=LION_PYTORCH, check=_check_betas),
    Hyperparameter("weight_decay", 0.0, since=LION_PYTORCH),
    Hyperparameter("decoupled_weight_decay", False, since=LION_PYTORCH),
    Hyperparameter("init_lr", 1e-4, since=LION_PYTORCH),
    MAXIMIZE.of(since=MOMENTOPT, on_load=False),
    FOREACH.of(since=MOMENTOPT, on_load=None),
    DIFFERENTIABLE.of(since=MOMENTOPT, on_load=False),
    FUSED.of(since=MOMENTOPT, on_load=None),
    checks=("lr", "betas"),
    checks_after_init=("fused",),
)
"""``lion_pytorch.Lion``'s hyperparameters (lr, betas, weight_decay; decoupled_weight_decay and
the constructor's lr, ``init_lr``, which lion-pytorch keeps on the instance), and torch's
flags."""


class Lion(TableDrivenOptimizer):
    """Lion (Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023,
    Algorithm 2), numerically ``lion_pytorch.Lion`` (lion-pytorch 0.2.5).

    .. math::
        w ← w (1 − α λ), \\qquad
        w ← w − α \\operatorname{sign}(β_1 m + (1 − β_1) g), \\qquad
        m ← β_2 m + (1 − β_2) g

    With ``decoupled_weight_decay`` the decay is ``α·λ/α₀`` (α₀ the constructor's ``lr``).
    State ``exp_avg`` (no step count). ``use_triton`` is taken for lion-pytorch's signature;
    momentopt chooses its own path (``fused=True`` compiles the step). ``maximize`` (ascend),
    ``foreach``, ``fused``, ``differentiable`` and ``cautious`` are momentopt's; complex
    parameters and sparse gradients are refused (lion-pytorch's ``sgn`` of a complex number
    is not the sign of its real view).
    """

    recipe = reference_recipe(
        InterpolatedMomentum(),
        gradient=(Maximize(), RelativeWeightDecay()),
        direction=(Sign(),),
        state_order=("exp_avg",),
        counts_steps=False,
    )
    hyperparameter_table: ClassVar[HyperparameterTable] = HYPERPARAMETERS
    kept_on_load: ClassVar[tuple[str, ...]] = ("cautious", "decoupled_weight_decay", "init_lr")

    def __init__(
        self,
        params: Any,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        use_triton: bool = False,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        cautious: bool = False,
        state_precision: StatePrecision = None,
    ) -> None:
        table = self.hyperparameter_table
        init_lr = lr
        defaults = table.defaults_from(locals())
        table.check_values(defaults)
        super().__init__(params, with_options(defaults, cautious, state_precision))
        table.check_flags(defaults)

    def check_step_group(self, group: Mapping[str, Any]) -> None:
        """The step unpacks ``betas`` (another length: ValueError, as in lion-pytorch) and
        refuses complex parameters and sparse gradients."""
        super().check_step_group(group)
        _beta1, _beta2 = group["betas"]
        refuse_complex_and_sparse("Lion", group)

    @classmethod
    def flag_defaults(cls) -> dict[str, Any]:
        """Group keys filled in when a loaded state_dict lacks them (lion-pytorch's has none
        of momentopt's flags)."""
        return cls.hyperparameter_table.load_defaults()
