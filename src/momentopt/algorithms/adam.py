"""Adam and AdamW: ``m = EMA(g)``, ``V = EMA(g²)``, both bias-corrected; AMSGrad option."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor

from ..rules import BiasCorrectedAverage, BiasCorrectedSquaredAverage
from .checks import require
from .hyperparameters import (
    BETAS,
    CAPTURABLE,
    DECOUPLED_WEIGHT_DECAY,
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
from .table_driven import TableDrivenOptimizer
from .torch_compat import FUSED_ADAM, FUSED_ADAMW, torch_recipe


def _check_tensor_hyperparameter(name: str, value: Any, foreach: Any, capturable: bool) -> None:
    if isinstance(value, Tensor):
        require(
            not (foreach and not capturable),
            f"{name} as a Tensor is not supported for capturable=False and foreach=True",
            f"{name} as a float, or capturable=True, or foreach not True",
        )
        require(value.numel() == 1, f"Tensor {name} must be 1-element", f"{name} has one element")


def _check_lr(group: Mapping[str, Any]) -> None:
    """torch's Adam looks at a tensor lr with foreach and capturable before its range."""
    lr = group["lr"]
    _check_tensor_hyperparameter("lr", lr, group["foreach"], group["capturable"])
    LR.check_value(lr)


def _check_betas_kinds(group: Mapping[str, Any]) -> None:
    """After the ranges: both betas floats or both tensors, a tensor of one element, and
    tensors only where foreach and capturable allow them."""
    betas = group["betas"]
    require(
        (isinstance(betas[0], float) and isinstance(betas[1], float))
        or (isinstance(betas[0], Tensor) and isinstance(betas[1], Tensor)),
        "betas must be either both floats or both Tensors",
        "betas as two floats or two 1-element tensors",
    )
    for i in (0, 1):
        _check_tensor_hyperparameter(f"betas[{i}]", betas[i], group["foreach"], group["capturable"])


def _squeeze(value: Any) -> Any:
    return value.squeeze() if isinstance(value, Tensor) and value.dim() != 0 else value


HYPERPARAMETERS = HyperparameterTable(
    LR.of(1e-3, since="<= 0.4", check=_check_lr),
    BETAS.of(since="<= 0.4"),
    EPS.of(1e-8, since="<= 0.4"),
    WEIGHT_DECAY.of(since="<= 0.4"),
    Hyperparameter("amsgrad", False, since="<= 0.4", on_load=False),
    MAXIMIZE.of(since="1.11", on_load=False),
    FOREACH.of(since="1.12", on_load=None),
    CAPTURABLE.of(since="<= 1.13", on_load=False),
    DIFFERENTIABLE.of(since="1.13", on_load=False),
    FUSED.of(since="1.13", on_load=None),
    DECOUPLED_WEIGHT_DECAY.of(since="2.7", on_load=False),
    checks=("lr", "eps", "betas", "weight_decay", _check_betas_kinds),
    checks_after_init=("fused",),
    load_order=(
        "amsgrad",
        "maximize",
        "foreach",
        "capturable",
        "differentiable",
        "decoupled_weight_decay",
        "fused",
    ),
)
"""``torch.optim.Adam``'s hyperparameters."""

ADAMW_HYPERPARAMETERS = HYPERPARAMETERS.with_row("weight_decay", default=1e-2).with_row(
    "decoupled_weight_decay", default=True, on_load=True
)
"""``torch.optim.AdamW``'s (torch 1.2): Adam's, with ``weight_decay=1e-2`` and decoupled weight
decay, which loading sets too (the releases are Adam's)."""


class Adam(TableDrivenOptimizer):
    """Adam, a drop-in for ``torch.optim.Adam`` (AMSGrad, decoupled weight decay).

    ``m ← β1·m + (1−β1)·g``; ``v ← β2·v + (1−β2)·g²``;
    ``w ← w − α/(1−β1^t) · m/(√(v/(1−β2^t)) + ε)``.
    """

    recipe = torch_recipe(BiasCorrectedAverage(), BiasCorrectedSquaredAverage())
    torch_kernels = (FUSED_ADAM, FUSED_ADAMW)
    sparse_message = "Adam does not support sparse gradients, please consider SparseAdam instead"
    hyperparameter_table: ClassVar[HyperparameterTable] = HYPERPARAMETERS

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
        cautious: bool = False,
        state_precision: StatePrecision = None,
    ) -> None:
        table = self.hyperparameter_table
        defaults = table.defaults_from(locals())
        table.check_values(defaults)
        defaults["betas"] = tuple(_squeeze(b) for b in betas)
        super().__init__(params, with_options(defaults, cautious, state_precision))
        table.check_flags(defaults)

    squeezed_hyperparameters: ClassVar[tuple[str, ...]] = ("lr", "betas")

    def check_step_group(self, group: Mapping[str, Any]) -> None:
        """torch's step unpacks ``betas`` before anything: another length raises ValueError."""
        super().check_step_group(group)
        _beta1, _beta2 = group["betas"]

    @classmethod
    def flag_defaults(cls) -> dict[str, Any]:
        """Group keys filled in when a loaded state_dict predates them (torch's list)."""
        return cls.hyperparameter_table.load_defaults()


class AdamW(Adam):
    """AdamW, a drop-in for ``torch.optim.AdamW``: Adam with decoupled decay
    ``w ← w·(1 − α·λ)`` (default λ = 0.01)."""

    hyperparameter_table: ClassVar[HyperparameterTable] = ADAMW_HYPERPARAMETERS

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        cautious: bool = False,
        state_precision: StatePrecision = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
            cautious=cautious,
            state_precision=state_precision,
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
