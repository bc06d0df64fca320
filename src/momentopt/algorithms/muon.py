"""Muon: momentum orthogonalised by a Newton–Schulz iteration, for 2-D parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..rules import AveragedMomentum, Orthogonalized, ShapeAdjustedLr, WeightDecay
from ..rules.orthogonal import NS_COEFFICIENTS
from .checks import require
from .hyperparameters import Bound, Hyperparameter, HyperparameterTable
from .options import StatePrecision, with_options
from .table_driven import TableDrivenOptimizer
from .torch_compat import refuse_complex_and_sparse, torch_recipe

ADJUST_LR_FNS = ("original", "match_rms_adamw")


def _check_adjust_lr_fn(group: Mapping[str, Any]) -> None:
    fn = group["adjust_lr_fn"]
    require(
        fn is None or fn in ADJUST_LR_FNS,
        f"Adjust learning rate function {fn} is not supported",
        f"adjust_lr_fn None or one of {ADJUST_LR_FNS}",
    )


HYPERPARAMETERS = HyperparameterTable(
    Hyperparameter(
        "lr",
        1e-3,
        since="2.9",
        bound=Bound("Learning rate should be >= 0 but is: {value}"),
        one_element=True,
    ),
    Hyperparameter(
        "weight_decay", 0.1, since="2.9", bound=Bound("weight decay should be >= 0 but is: {value}")
    ),
    Hyperparameter(
        "momentum", 0.95, since="2.9", bound=Bound("momentum should be >= 0 but is: {value}")
    ),
    Hyperparameter("nesterov", True, since="2.9"),
    Hyperparameter("ns_coefficients", NS_COEFFICIENTS, since="2.9"),
    Hyperparameter("eps", 1e-7, since="2.9"),
    Hyperparameter("ns_steps", 5, since="2.9"),
    Hyperparameter("adjust_lr_fn", None, since="2.9", check=_check_adjust_lr_fn),
    checks=("lr", "momentum", "weight_decay", "adjust_lr_fn"),
)
"""``torch.optim.Muon``'s hyperparameters (one implementation, the for-loop; no flags)."""


class Muon(TableDrivenOptimizer):
    """Muon, a drop-in for ``torch.optim.Muon`` (Jordan et al., 2024), for 2-D parameters.

    ``B ← μ·B + (1−μ)·g``; ``m = (1−μ)·g + μ·B`` (Nesterov) or ``B``; ``O = NS(m)`` (Newton–
    Schulz in bfloat16); ``w ← w·(1 − α·λ) − α·r(A, B)·O`` with ``r = √max(1, A/B)``
    ("original") or ``0.2·√max(A, B)`` ("match_rms_adamw") for an ``A × B`` matrix.

    torch orthogonalises one matrix at a time; the multi-tensor path (the default) runs the
    matrices of one shape as one batch. A batched bfloat16 product rounds as the single ones
    except in rare elements (on an AVX-512 CPU about one matrix in 50–300, by at most a few
    bfloat16 ulps of its largest entry after the iteration); ``MOMENTOPT_EXECUTOR=per-tensor``
    gives torch's numbers to the last bit.
    """

    recipe = torch_recipe(
        Orthogonalized(AveragedMomentum()),
        gradient=(WeightDecay(decoupled=True),),
        schedule=(ShapeAdjustedLr(),),
        counts_steps=False,
    )
    hyperparameter_table: ClassVar[HyperparameterTable] = HYPERPARAMETERS

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
        eps: float = 1e-7,
        ns_steps: int = 5,
        adjust_lr_fn: str | None = None,
        *,
        cautious: bool = False,
        state_precision: StatePrecision = None,
    ) -> None:
        table = self.hyperparameter_table
        defaults = table.defaults_from(locals())
        table.check_values(defaults)
        super().__init__(params, with_options(defaults, cautious, state_precision))
        for group in self.param_groups:
            for p in group["params"]:
                require(
                    p.ndim == 2,
                    "Muon only supports 2D parameters whereas we found a parameter with size: "
                    f"{p.size()}",
                    "2-D parameters",
                )

    def check_step_group(self, group: Mapping[str, Any]) -> None:
        """torch's refusals at the step, before anything changes (torch raises them in its loop,
        after updating the momentum of the parameters before): complex parameters and sparse
        gradients, a gradient that is not a matrix, then its Newton–Schulz arguments."""
        refuse_complex_and_sparse("Muon", group)
        if any(p.grad is not None and p.grad.ndim != 2 for p in group["params"]):
            raise ValueError("Param gradient must be a 2D matrix")
        require(
            group["ns_steps"] < 100,
            "Number of steps must be less than 100 for computational efficiency",
            "ns_steps < 100",
        )
        require(
            len(group["ns_coefficients"]) == 3,
            "Coefficients must be a tuple of exactly 3 values",
            "ns_coefficients of 3 numbers",
        )
