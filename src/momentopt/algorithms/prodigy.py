"""Prodigy: Adam with a step size estimated from the whole model (Mishchenko & Defazio, 2024), as
prodigyopt 1.1.2 has it."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from torch import Tensor

from ..rules import (
    EstimatedStepSize,
    ProdigyEstimate,
    ProdigyGradient,
    ScaledAverage,
    ScaledSquaredAverage,
)
from .checks import require
from .hyperparameters import FOREACH, FUSED, MAXIMIZE, Hyperparameter, HyperparameterTable
from .options import StatePrecision, with_options
from .reference_compat import MOMENTOPT, reference_recipe
from .table_driven import TableDrivenOptimizer
from .torch_compat import refuse_complex_and_sparse

PRODIGYOPT = "prodigyopt 1.1.2"


def _above_zero(name: str, message: str) -> Any:
    """prodigyopt's ``if not 0.0 < value: raise ValueError``."""
    return lambda group: require(0.0 < group[name], message.format(group[name]), f"{name} > 0")


def _check_betas(group: Mapping[str, Any]) -> None:
    for i in (0, 1):
        beta = group["betas"][i]
        require(
            0.0 <= beta < 1.0,
            f"Invalid beta parameter at index {i}: {beta}",
            f"0 <= betas[{i}] < 1",
        )


def _check_slice_p(group: Mapping[str, Any]) -> None:
    """``slice_p``: a positive int (prodigyopt checks nothing and fails at its first step, on
    ``w.flatten()[::slice_p]``)."""
    slice_p = group["slice_p"]
    require(
        isinstance(slice_p, int) and not isinstance(slice_p, bool),
        f"Invalid slice_p value: {slice_p!r} (an int is needed)",
        "slice_p an int >= 1",
        TypeError,
    )
    require(slice_p >= 1, f"Invalid slice_p value: {slice_p}", "slice_p >= 1")


def _keeps_first_moment(group: Mapping[str, Any]) -> bool | None:
    """Whether ``group``'s parameters keep ``exp_avg`` (β1 > 0), or None if its ``betas``
    cannot say (the step refuses them with its own error)."""
    try:
        return bool(group["betas"][0] > 0)
    except (TypeError, IndexError, KeyError, RuntimeError):
        return None


def _check_shared_betas(groups: Sequence[Mapping[str, Any]]) -> None:
    """prodigyopt reads ``betas`` from the first group for every group; a group whose β1 is
    0 where the first group's is not (or the other way round) would keep other state than
    the β1 it steps with: refused (prodigyopt steps it with the first group's β1)."""
    first = _keeps_first_moment(groups[0])
    for i, group in enumerate(groups[1:], start=1):
        kept = _keeps_first_moment(group)
        require(
            first is None or kept is None or kept == first,
            f"param_groups[{i}] has betas={tuple(group['betas'])} but param_groups[0] has "
            f"betas={tuple(groups[0]['betas'])}: Prodigy steps every group with the first "
            "group's betas, so β1 must be 0 in every group or in none",
            "betas[0] > 0 in every group or in none (the first group's betas are used)",
        )


HYPERPARAMETERS = HyperparameterTable(
    Hyperparameter(
        "lr", 1.0, since=PRODIGYOPT, check=_above_zero("lr", "Invalid learning rate: {}")
    ),
    Hyperparameter("betas", (0.9, 0.999), since=PRODIGYOPT, check=_check_betas),
    Hyperparameter("beta3", None, since=PRODIGYOPT),
    Hyperparameter(
        "eps", 1e-8, since=PRODIGYOPT, check=_above_zero("eps", "Invalid epsilon value: {}")
    ),
    Hyperparameter("weight_decay", 0, since=PRODIGYOPT),
    Hyperparameter("d", 1e-6, since=PRODIGYOPT),
    Hyperparameter("d0", 1e-6, since=PRODIGYOPT, check=_above_zero("d0", "Invalid d0 value: {}")),
    Hyperparameter("d_max", 1e-6, since=PRODIGYOPT),
    Hyperparameter("d_numerator", 0.0, since=PRODIGYOPT),
    Hyperparameter("d_coef", 1.0, since=PRODIGYOPT),
    Hyperparameter("k", 0, since=PRODIGYOPT),
    Hyperparameter("growth_rate", math.inf, since=PRODIGYOPT),
    Hyperparameter("use_bias_correction", False, since=PRODIGYOPT),
    Hyperparameter("decouple", True, since=PRODIGYOPT),
    Hyperparameter("safeguard_warmup", False, since=PRODIGYOPT),
    Hyperparameter("fsdp_in_use", False, since=PRODIGYOPT),
    Hyperparameter("slice_p", 1, since=PRODIGYOPT, check=_check_slice_p),
    MAXIMIZE.of(since=MOMENTOPT, on_load=False),
    FOREACH.of(since=MOMENTOPT, on_load=None),
    FUSED.of(
        since=MOMENTOPT,
        on_load=None,
        check=lambda g: require(
            not (g["fused"] and g["foreach"]),
            "`fused` and `foreach` cannot be `True` together.",
            "at most one of fused and foreach is True",
            RuntimeError,
        ),
    ),
    checks=("d0", "lr", "eps", "betas", "slice_p"),
    checks_after_init=("fused",),
)
"""``prodigyopt.Prodigy``'s group keys in its order (``d``, ``d_max``, ``d_numerator``, ``k`` are
its estimate's state, kept in the groups), its checks and texts, and momentopt's flags."""


class Prodigy(TableDrivenOptimizer):
    """Prodigy (Mishchenko & Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free
    Learner", ICML 2024), numerically ``prodigyopt.Prodigy`` (prodigyopt 1.1.2): Adam on
    ``d·g`` with the step size ``d·lr``, where ``d`` is re-estimated before each step from
    sums over every parameter of every group (:class:`~momentopt.rules.ProdigyEstimate`; across
    processes with ``fsdp_in_use``, or parameters FSDP flattened, where ``torch.distributed``
    is initialised).

    .. math::
        m ← β_1 m + d(1 − β_1) g, \\quad v ← β_2 v + d^2(1 − β_2) g^2, \\quad
        w ← w − d_k\\,\\text{lr}\\; m/(\\sqrt{v} + d_{k+1} ε)

    Leave ``lr`` at 1. The shared values (``betas``, ``beta3``, ``decouple``, ``d``, ``k``...)
    are read from the first group, as prodigyopt does; groups' lrs must be equal or 0, and β1
    0 in every group or in none (the state a group keeps follows its own). State ``step``, ``s``,
    ``p0`` (flat: every ``slice_p``-th entry of the flattened parameter, on which ``d``'s
    statistics are kept), ``exp_avg`` (kept when β1 > 0), ``exp_avg_sq``. ``maximize``,
    ``foreach``, ``fused`` and ``cautious`` are momentopt's; unlike prodigyopt, the step leaves
    ``p.grad`` as it was.
    """

    recipe = reference_recipe(
        ScaledAverage(),
        ScaledSquaredAverage(),
        gradient=(ProdigyGradient(),),
        schedule=(EstimatedStepSize(),),
        reduced=ProdigyEstimate(),
        state_order=("s", "p0", "exp_avg", "exp_avg_sq"),
    )
    hyperparameter_table: ClassVar[HyperparameterTable] = HYPERPARAMETERS

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        betas: tuple[float, float] = (0.9, 0.999),
        beta3: float | None = None,
        eps: float = 1e-8,
        weight_decay: float = 0,
        decouple: bool = True,
        use_bias_correction: bool = False,
        safeguard_warmup: bool = False,
        d0: float = 1e-6,
        d_coef: float = 1.0,
        growth_rate: float = float("inf"),
        fsdp_in_use: bool = False,
        slice_p: int = 1,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        cautious: bool = False,
        state_precision: StatePrecision = None,
    ) -> None:
        table = self.hyperparameter_table
        defaults = table.defaults_from(
            {**locals(), "d": d0, "d_max": d0, "d_numerator": 0.0, "k": 0}
        )
        table.check_values(defaults)
        super().__init__(params, with_options(defaults, cautious, state_precision))
        table.check_flags(defaults)

    def check_step_group(self, group: Mapping[str, Any]) -> None:
        """The step unpacks ``betas`` (another length: ValueError) and refuses complex
        parameters and sparse gradients."""
        super().check_step_group(group)
        _beta1, _beta2 = group["betas"]
        refuse_complex_and_sparse("Prodigy", group)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One step (see ``RecipeOptimizer.step``), after checking every group's ``slice_p``:
        a group added by ``add_param_group`` (which checks nothing, as torch's) with another
        value is refused before anything changes, as is a group whose β1 is 0 where the first
        group's is not (or the other way round) after a change of ``betas``."""
        for group in self.param_groups:
            _check_slice_p(group)
        _check_shared_betas(self.param_groups)
        return super().step(closure)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (see ``torch.optim.Optimizer.add_param_group``); one whose β1 is 0
        where the first group's is not, or the other way round, is refused (ValueError) and
        not added: every group steps with the first group's ``betas``."""
        super().add_param_group(param_group)
        try:
            _check_shared_betas([self.param_groups[0], self.param_groups[-1]])
        except ValueError:
            self.param_groups.pop()
            raise

    @classmethod
    def flag_defaults(cls) -> dict[str, Any]:
        """Group keys filled in when a loaded state_dict lacks them (prodigyopt's groups have
        none of momentopt's flags)."""
        return cls.hyperparameter_table.load_defaults()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load ``state_dict`` after checking it fits (see ``RecipeOptimizer.load_state_dict``).
        prodigyopt keeps ``p0`` of a parameter that was all zeros as a 0-d zero: it is loaded
        as the zeros it stands for (``⌈n/slice_p⌉`` of them, the saved group's ``slice_p``)."""
        try:
            saved_groups = state_dict["param_groups"]
            ids = [(i, g.get("slice_p", 1)) for g in saved_groups for i in g["params"]]
            state = dict(state_dict["state"])
        except (TypeError, KeyError, AttributeError):  # the checked load says what is wrong
            super().load_state_dict(state_dict)
            return
        params = [p for group in self.param_groups for p in group["params"]]
        for (index, slice_p), p in zip(ids, params, strict=False):
            saved = state.get(index)
            p0 = saved.get("p0") if isinstance(saved, Mapping) else None
            sliced = isinstance(slice_p, int) and slice_p >= 1
            if sliced and isinstance(p0, Tensor) and p0.dim() == 0 and p0.item() == 0:
                n = -(-p.numel() // slice_p)  # ⌈n/slice_p⌉
                state[index] = {**saved, "p0": p0.expand(n).clone()}
        super().load_state_dict({**state_dict, "state": state})
