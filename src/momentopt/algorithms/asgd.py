"""ASGD: SGD with a decaying step size kept in state, and the average of its iterates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor

from ..rules import (
    DecayingStepSize,
    IterateAverage,
    Maximize,
    NoFirstMoment,
    StepSizeDecay,
    WeightDecay,
)
from .hyperparameters import (
    CAPTURABLE,
    DIFFERENTIABLE,
    FOREACH,
    LR,
    MAXIMIZE,
    WEIGHT_DECAY,
    Hyperparameter,
    HyperparameterTable,
)
from .options import StatePrecision, with_options
from .table_driven import TableDrivenOptimizer
from .torch_compat import torch_recipe

HYPERPARAMETERS = HyperparameterTable(
    LR.of(1e-2, since="<= 0.4"),
    Hyperparameter("lambd", 1e-4, since="<= 0.4"),
    Hyperparameter("alpha", 0.75, since="<= 0.4"),
    Hyperparameter("t0", 1e6, since="<= 0.4"),
    WEIGHT_DECAY.of(since="<= 0.4"),
    FOREACH.of(since="1.12", on_load=None),
    MAXIMIZE.of(since="1.12", on_load=False),
    DIFFERENTIABLE.of(since="1.13 or 2.0", on_load=False),
    CAPTURABLE.of(since="2.2 or 2.3", on_load=False),
    checks=("lr", "weight_decay"),
)
"""``torch.optim.ASGD``'s hyperparameters (it has no fused implementation; ``lambd``,
``alpha`` and ``t0`` are not checked)."""

_STEP_SIZE = DecayingStepSize()


class ASGD(TableDrivenOptimizer):
    """Averaged SGD, a drop-in for ``torch.optim.ASGD`` (Polyak & Juditsky, "Acceleration of
    Stochastic Approximation by Averaging", SIAM J. Control Optim. 1992; the step size and
    decay of Bottou, "Stochastic Gradient Descent Tricks", 2012).

    .. math::
        w_t = w_{t−1} (1 − λ η_t) − η_t g_t, \\qquad
        \\bar w_t = \\bar w_{t−1} + μ_t (w_t − \\bar w_{t−1}),

        η_{t+1} = α / (1 + λ α t)^{p}, \\qquad μ_{t+1} = 1 / \\max(1, t − t_0)

    (λ = ``lambd``, p = ``alpha``, ``η₁ = α``, ``μ₁ = 1``; ``g`` with coupled weight decay
    ``+ weight_decay·w``, negated under ``maximize``). State ``step``, ``eta``, ``mu``,
    ``ax`` (w̄), kept on the parameter's device as torch keeps them.

    Every path computes the numbers of torch's for-loop (its default on the CPU); torch's
    ``foreach=True`` computes η in the step counter's float32 and folds the decay into the
    gradient (``w − η·(g + λ·w)``), which rounds otherwise: a deliberate deviation.
    """

    recipe = torch_recipe(
        NoFirstMoment(),
        gradient=(Maximize(), WeightDecay(), StepSizeDecay((_STEP_SIZE,))),
        schedule=(_STEP_SIZE,),
        after=(IterateAverage(),),
    )
    hyperparameter_table: ClassVar[HyperparameterTable] = HYPERPARAMETERS
    scalars_on_param_device: ClassVar[bool] = True
    capturable_subject: ClassVar[str | None] = "params, mus, etas, and state_steps"

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-2,
        lambd: float = 1e-4,
        alpha: float = 0.75,
        t0: float = 1e6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
        *,
        cautious: bool = False,
        state_precision: StatePrecision = None,
    ) -> None:
        table = self.hyperparameter_table
        defaults = table.defaults_from(locals())
        table.check_values(defaults)
        super().__init__(params, with_options(defaults, cautious, state_precision))

    def check_step_update(self, group: Mapping[str, Any]) -> None:
        """torch computes the next η and μ (``α/(1 + λ·α·t)^alpha``, ``1/max(1, t − t0)``) at
        the end of each parameter's step, so an ``alpha`` or ``t0`` they cannot take (a
        string, None) raises its TypeError once the first parameter is updated; here before
        any update (after the capturable check), on every path alike — unless that first
        update raises (an expanded parameter: torch's in-place ops refuse it)."""
        super().check_step_update(group)
        first = next(p for p in group["params"] if p.grad is not None)
        if not any(st == 0 and n > 1 for st, n in zip(first.stride(), first.shape, strict=True)):
            _power, _count = 1.0 ** group["alpha"], max(1, 1.0 - group["t0"])

    @classmethod
    def flag_defaults(cls) -> dict[str, Any]:
        """Group keys filled in when a loaded state_dict predates them (torch's list)."""
        return cls.hyperparameter_table.load_defaults()
