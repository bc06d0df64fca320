"""SGD, with momentum, dampening and Nesterov: ``m = g`` or heavy ball; ``V = 1``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..engine.selection import check_fused_param
from ..rules import HeavyBall
from .checks import require
from .hyperparameters import (
    DIFFERENTIABLE,
    FOREACH,
    FUSED,
    LR,
    MAXIMIZE,
    MOMENTUM,
    WEIGHT_DECAY,
    Bound,
    Hyperparameter,
    HyperparameterTable,
)
from .options import StatePrecision, with_options
from .table_driven import TableDrivenOptimizer
from .torch_compat import FUSED_SGD, torch_recipe


def _nan_passing(entry: Hyperparameter) -> Bound:
    """``entry``'s range as torch's SGD writes it, ``if lr < 0.0: raise``: NaN passes."""
    assert entry.bound is not None
    return replace(entry.bound, nan_passes=True)


def _check_nesterov(group: Mapping[str, Any]) -> None:
    momentum = group["momentum"]
    require(
        not (group["nesterov"] and (momentum <= 0 or group["dampening"] != 0)),
        "Nesterov momentum requires a momentum and zero dampening",
        "nesterov=True with momentum > 0 and dampening == 0",
    )


HYPERPARAMETERS = HyperparameterTable(
    LR.of(1e-3, since="<= 1.0", bound=_nan_passing(LR)),
    MOMENTUM.of(since="<= 1.0", bound=_nan_passing(MOMENTUM)),
    Hyperparameter("dampening", 0, since="<= 1.0"),
    WEIGHT_DECAY.of(since="<= 1.0", bound=_nan_passing(WEIGHT_DECAY)),
    Hyperparameter("nesterov", False, since="<= 1.0", check=_check_nesterov, on_load=False),
    MAXIMIZE.of(since="<= 1.11", on_load=False),
    FOREACH.of(since="1.12", on_load=None),
    DIFFERENTIABLE.of(since="1.13", on_load=False),
    FUSED.of(since="2.3", on_load=False),
    checks=("lr", "momentum", "weight_decay", "nesterov"),
    checks_after_init=("fused",),
)
"""``torch.optim.SGD``'s hyperparameters; loading fills in ``fused=False`` (the constructor's
default is None)."""


class SGD(TableDrivenOptimizer):
    """Stochastic gradient descent, a drop-in for ``torch.optim.SGD``.

    ``b ← μ·b + (1−dampening)·g`` (``b₁ = g``); ``m = b`` or ``g + μ·b`` (nesterov);
    ``w ← w − α·m``.
    """

    recipe = torch_recipe(HeavyBall(), counts_steps=False)
    torch_kernels = (FUSED_SGD,)
    supports_sparse: ClassVar[bool] = True
    foreach_differentiable: ClassVar[bool] = True
    hyperparameter_table: ClassVar[HyperparameterTable] = HYPERPARAMETERS

    def check_fused_params(self, group: Mapping[str, Any], params: list[Tensor]) -> None:
        """torch's SGD checks the first parameter with a gradient, once (RuntimeError); a later
        one that is not floating point meets its kernel's NotImplementedError, after what
        torch refuses before the kernel runs: sparse gradients (RuntimeError), then flags
        that are not bools (TypeError, from the kernel's argument parser). Raised here in
        that order, before anything changes."""
        if not getattr(self, "_fused_params_checked", False):
            check_fused_param(params[0])
            self._fused_params_checked = True
        for p in params:
            if not torch.is_floating_point(p):
                if any(q.grad is not None and q.grad.is_sparse for q in params):
                    self._check_sparse(group, fused=True)
                self._check_fused_flags(group)
                raise NotImplementedError(f'"fused_sgd_kernel" not implemented for {p.dtype}')

    fused_sparse_message = "`_fused_sgd` does not support sparse gradients"

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float | Tensor = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
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
