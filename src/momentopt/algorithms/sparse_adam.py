"""SparseAdam: Adam for sparse gradients, moving its moments only where a gradient is."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor

from ..rules import BiasCorrectedAverage, LazySquaredAverage, Maximize, SecondMomentCorrection
from .checks import require
from .hyperparameters import BETAS, EPS, LR, MAXIMIZE, Bound, HyperparameterTable
from .options import StatePrecision, with_options
from .table_driven import TableDrivenOptimizer
from .torch_compat import torch_recipe

HYPERPARAMETERS = HyperparameterTable(
    LR.of(1e-3, since="<= 1.0", bound=Bound("Invalid learning rate: {value}", open_low=True)),
    BETAS.of(since="<= 1.0"),
    EPS.of(1e-8, since="<= 1.0", bound=Bound("Invalid epsilon value: {value}", open_low=True)),
    MAXIMIZE.of(since="2.2"),
    checks=("lr", "eps", "betas"),
)
"""``torch.optim.SparseAdam``'s hyperparameters: ``lr`` and ``eps`` must be positive, and it
has neither weight decay nor implementation flags (one implementation: the for-loop)."""


class SparseAdam(TableDrivenOptimizer):
    """SparseAdam, a drop-in for ``torch.optim.SparseAdam``: Adam for dense parameters with
    sparse gradients (``nn.Embedding(sparse=True)``), updating the moments and the parameter
    only at the entries a gradient holds (the other entries' moments are not decayed).

    At the gradient's entries (Kingma & Ba, "Adam: A Method for Stochastic Optimization",
    ICLR 2015, with the step size of its section 2):

    .. math::
        m_t = m_{t−1} + (1 − β_1)(g_t − m_{t−1}), \\qquad
        v_t = v_{t−1} + (1 − β_2)(g_t^2 − v_{t−1}),

        w_t = w_{t−1} − \\frac{α \\sqrt{1 − β_2^t}}{1 − β_1^t} \\frac{m_t}{\\sqrt{v_t} + ε}

    State ``step``, ``exp_avg``, ``exp_avg_sq``. Dense gradients, sparse parameters and
    complex parameters are refused, with torch's errors. ``state_dict()`` holds ``step`` as a
    Python int, as torch's SparseAdam keeps it (a tensor in :attr:`state`).
    """

    recipe = torch_recipe(
        BiasCorrectedAverage(),
        LazySquaredAverage(),
        gradient=(Maximize(),),
        schedule=(SecondMomentCorrection(),),
    )
    supports_sparse: ClassVar[bool] = True
    dense_grads_message = (
        "SparseAdam does not support dense gradients, please consider Adam instead"
    )
    hyperparameter_table: ClassVar[HyperparameterTable] = HYPERPARAMETERS

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        maximize: bool = False,
        *,
        cautious: bool = False,
        state_precision: StatePrecision = None,
    ) -> None:
        table = self.hyperparameter_table
        defaults = table.defaults_from(locals())
        table.check_values(defaults)
        require(  # its mask's mean over a sparse gradient's rows, or over all: not defined
            not cautious,
            "SparseAdam does not support cautious=True (the cautious update needs dense gradients)",
            "cautious=False",
        )
        super().__init__(params, with_options(defaults, False, state_precision))
        where = [
            (p, [i, j])
            for i, group in enumerate(self.param_groups)
            for j, p in enumerate(group["params"])
        ]
        sparse = [index for p, index in where if p.is_sparse]
        if sparse:
            raise ValueError(
                f"Sparse params at indices {sparse}: SparseAdam requires dense parameter tensors"
            )
        complex_params = [index for p, index in where if p.is_complex()]
        if complex_params:
            raise ValueError(
                f"Complex params at indices {complex_params}: SparseAdam does not support "
                "complex parameters"
            )

    def check_step_group(self, group: Mapping[str, Any]) -> None:
        """torch's step unpacks ``betas`` before anything: another length raises ValueError."""
        super().check_step_group(group)
        _beta1, _beta2 = group["betas"]

    @classmethod
    def read_defaults(cls) -> dict[str, Any]:
        """torch's SparseAdam reads ``group.get("maximize", False)``: a group saved before
        torch had the flag (2.2) loads and steps without it."""
        return {"maximize": False}

    def state_dict(self) -> dict[str, Any]:
        """The state as torch's SparseAdam lays it out: ``step`` a Python int. Entries that
        are not a parameter's state dict (anything a user or a hook put into ``self.state``:
        a flag, a list) pass through unchanged, as torch's ``state_dict`` passes them."""
        state_dict = super().state_dict()
        state_dict["state"] = {
            index: {**state, "step": int(state["step"])}
            if isinstance(state, Mapping) and "step" in state
            else state
            for index, state in state_dict["state"].items()
        }
        return state_dict
