"""Schedule-free AdamW and SGD (Defazio et al., 2024), as schedulefree 1.4.1 has them: the
parameters hold the interpolation ``y`` while training and the average ``x`` for evaluation;
``train()`` and ``eval()`` switch between them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor

from ..rules import (
    GroupCorrectedSquaredAverage,
    Maximize,
    ScheduleFreeIterates,
    ScheduleFreeSchedule,
)
from .checks import check_flags, require
from .hyperparameters import (
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

SCHEDULEFREE = "schedulefree 1.4.1"

GROUP_COUNTERS: dict[str, Any] = {
    "k": 0,
    "train_mode": False,
    "weight_sum": 0.0,
    "lr_max": -1.0,
    "scheduled_lr": 0.0,
}
"""The keys schedulefree keeps in every param group beside the hyperparameters, as they start
(the step count, the mode, the averaging weights' sum, the largest and the last step size)."""

NOT_IN_TRAIN_MODE = (
    "Optimizer was not in train mode when step is called. Please insert .train() and .eval() "
    "calls on the optimizer. See documentation for details."
)


COUNTER = {name: Hyperparameter(name, v, since=SCHEDULEFREE) for name, v in GROUP_COUNTERS.items()}


def _check_adamw_betas(group: Mapping[str, Any]) -> None:
    """β1 in (0, 1) (``eval()`` divides by it), β2 in [0, 1); schedulefree checks neither."""
    beta1, beta2 = group["betas"]
    require(0.0 < beta1 < 1.0, f"Invalid beta parameter at index 0: {beta1}", "0 < betas[0] < 1")
    require(0.0 <= beta2 < 1.0, f"Invalid beta parameter at index 1: {beta2}", "0 <= betas[1] < 1")


ADAMW_HYPERPARAMETERS = HyperparameterTable(
    LR.of(0.0025, since=SCHEDULEFREE),
    Hyperparameter("betas", (0.9, 0.999), since=SCHEDULEFREE, check=_check_adamw_betas),
    EPS.of(1e-8, since=SCHEDULEFREE),
    Hyperparameter("r", 0.0, since=SCHEDULEFREE),
    COUNTER["k"],
    Hyperparameter("warmup_steps", 0, since=SCHEDULEFREE),
    COUNTER["train_mode"],
    COUNTER["weight_sum"],
    COUNTER["lr_max"],
    COUNTER["scheduled_lr"],
    Hyperparameter("weight_lr_power", 2.0, since=SCHEDULEFREE),
    WEIGHT_DECAY.of(0, since=SCHEDULEFREE),
    FOREACH.of(None, since=SCHEDULEFREE),  # (schedulefree's True: see the classes)
    MAXIMIZE.of(since=MOMENTOPT, on_load=False),
    FUSED.of(
        since=MOMENTOPT, on_load=None, check=lambda g: check_flags(g["fused"], g["foreach"], False)
    ),
    checks=("lr", "eps", "betas", "weight_decay"),
    checks_after_init=("fused",),
)
"""``schedulefree.AdamWScheduleFree``'s group keys in its order, and momentopt's flags.
schedulefree checks none of them; momentopt refuses what cannot step (torch's texts)."""


def _check_momentum(group: Mapping[str, Any]) -> None:
    momentum = group["momentum"]
    require(
        not (momentum <= 0 or momentum >= 1),
        f"Momentum must be between 0 and 1 exclusive: {momentum}",
        "0 < momentum < 1",
    )


SGD_HYPERPARAMETERS = HyperparameterTable(
    Hyperparameter("lr", 1.0, since=SCHEDULEFREE, check=lambda g: _refuse_below_zero(g, "lr")),
    Hyperparameter("momentum", 0.9, since=SCHEDULEFREE, check=_check_momentum),
    Hyperparameter("r", 0.0, since=SCHEDULEFREE),
    COUNTER["k"],
    Hyperparameter("warmup_steps", 0, since=SCHEDULEFREE),
    COUNTER["train_mode"],
    COUNTER["weight_sum"],
    COUNTER["lr_max"],
    COUNTER["scheduled_lr"],
    Hyperparameter("weight_lr_power", 2, since=SCHEDULEFREE),
    Hyperparameter(
        "weight_decay",
        0,
        since=SCHEDULEFREE,
        check=lambda g: _refuse_below_zero(g, "weight_decay"),
    ),
    FOREACH.of(None, since=SCHEDULEFREE),  # (schedulefree's True: see the classes)
    MAXIMIZE.of(since=MOMENTOPT, on_load=False),
    FUSED.of(
        since=MOMENTOPT, on_load=None, check=lambda g: check_flags(g["fused"], g["foreach"], False)
    ),
    checks=("lr", "weight_decay", "momentum"),
    checks_after_init=("fused",),
)
"""``schedulefree.SGDScheduleFree``'s group keys in its order, with its checks and texts, and
momentopt's flags."""

_BELOW_ZERO = {"lr": "Invalid learning rate: {}", "weight_decay": "Invalid weight_decay value: {}"}


def _refuse_below_zero(group: Mapping[str, Any], name: str) -> None:
    """schedulefree's ``if value < 0.0: raise ValueError`` (so NaN passes, as there)."""
    require(not group[name] < 0.0, _BELOW_ZERO[name].format(group[name]), f"{name} >= 0")


class _ScheduleFree(TableDrivenOptimizer):
    """What both schedule-free classes share: the mode switches and the step's check."""

    hyperparameter_table: ClassVar[HyperparameterTable]

    def _defaults(
        self, arguments: Mapping[str, Any], cautious: bool, state_precision: StatePrecision
    ) -> dict[str, Any]:
        table = self.hyperparameter_table
        defaults = table.defaults_from({**arguments, **GROUP_COUNTERS})
        table.check_values(defaults)
        return with_options(defaults, cautious, state_precision)

    def step(self, closure: Any = None) -> Any:
        """Perform one optimization step (in train mode only: schedulefree's ``Exception``
        otherwise); returns ``closure()``'s loss if given."""
        if not self.param_groups[0]["train_mode"]:
            raise Exception(NOT_IN_TRAIN_MODE)  # (schedulefree's type)
        return super().step(closure)

    def eval(self) -> None:
        """Switch the parameters to the average ``x`` (for evaluation and checkpoints)."""
        for group in self.param_groups:
            if group["train_mode"]:
                self.over_states(group, self.recipe.first.to_eval)  # type: ignore[attr-defined]
                group["train_mode"] = False

    def train(self) -> None:
        """Switch the parameters to the interpolation ``y`` (for training steps)."""
        for group in self.param_groups:
            if not group["train_mode"]:
                self.over_states(group, self.recipe.first.to_train)  # type: ignore[attr-defined]
                group["train_mode"] = True

    @classmethod
    def flag_defaults(cls) -> dict[str, Any]:
        """Group keys filled in when a loaded state_dict lacks them (schedulefree's groups
        have none of momentopt's flags)."""
        return cls.hyperparameter_table.load_defaults()


class ScheduleFreeAdamW(_ScheduleFree):
    """Schedule-free AdamW (Defazio et al., "The Road Less Scheduled", NeurIPS 2024),
    numerically ``schedulefree.AdamWScheduleFree`` (schedulefree 1.4.1).

    .. math::
        v ← β_2 v + (1 − β_2) g^2, \\quad \\hat g = g/(\\sqrt{v/(1 − β_2^k)} + ε) + λ y, \\quad
        y ← y + c (z − y) − γ (1 − β_1 (1 − c))\\, \\hat g, \\quad z ← z − γ \\hat g

    with γ the warmed-up step size and c the averaging weight of
    :class:`~momentopt.rules.ScheduleFreeSchedule`. Call ``train()`` before training steps and
    ``eval()`` before evaluating or saving (the parameters then hold the average ``x``). The
    group keeps schedulefree's counters (``k``, ``train_mode``, ``weight_sum``, ``lr_max``,
    ``scheduled_lr``); state ``z``, ``exp_avg_sq``. ``maximize``, ``fused`` (with
    ``foreach=None``: the step compiled) and ``cautious`` (it masks ``y``'s gradient step; the
    pull towards ``z`` and ``z``'s own step are not directions) are momentopt's. Unlike
    schedulefree, the step leaves ``p.grad`` as it was, and ``foreach`` defaults to None:
    schedulefree's True chooses its multi-tensor loop (an implementation, not the math), and
    momentopt's None lets its step plan choose as every momentopt optimizer does (compiled, one
    memory pass, for large groups); ``foreach=True`` runs the multi-tensor path, bit for bit
    schedulefree's loop.
    """

    recipe = reference_recipe(
        ScheduleFreeIterates("betas"),
        GroupCorrectedSquaredAverage(),
        gradient=(Maximize(),),
        schedule=(ScheduleFreeSchedule("betas"),),
        state_order=("z", "exp_avg_sq"),
        counts_steps=False,
    )
    hyperparameter_table: ClassVar[HyperparameterTable] = ADAMW_HYPERPARAMETERS

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 0.0025,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        fused: bool | None = None,
        cautious: bool = False,
        state_precision: StatePrecision = None,
    ) -> None:
        defaults = self._defaults(locals(), cautious, state_precision)
        super().__init__(params, defaults)
        self.hyperparameter_table.check_flags(defaults)

    def check_step_group(self, group: Mapping[str, Any]) -> None:
        """The step unpacks ``betas`` (another length: ValueError, as in schedulefree)."""
        super().check_step_group(group)
        _beta1, _beta2 = group["betas"]


class ScheduleFreeSGD(_ScheduleFree):
    """Schedule-free SGD (Defazio et al., "The Road Less Scheduled", NeurIPS 2024), numerically
    ``schedulefree.SGDScheduleFree`` (schedulefree 1.4.1).

    .. math::
        \\hat g = g + λ y, \\qquad y ← y + c (z − y) − γ (1 − β (1 − c))\\, \\hat g, \\qquad
        z ← z − γ \\hat g

    (β = ``momentum``). ``train()`` / ``eval()``, the group's counters, the flags and ``p.grad``
    as in :class:`ScheduleFreeAdamW`; state ``z``.
    """

    recipe = reference_recipe(
        ScheduleFreeIterates("momentum"),
        gradient=(Maximize(),),
        schedule=(ScheduleFreeSchedule("momentum"),),
        state_order=("z",),
        counts_steps=False,
    )
    hyperparameter_table: ClassVar[HyperparameterTable] = SGD_HYPERPARAMETERS

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        fused: bool | None = None,
        cautious: bool = False,
        state_precision: StatePrecision = None,
    ) -> None:
        defaults = self._defaults(locals(), cautious, state_precision)
        super().__init__(params, defaults)
        self.hyperparameter_table.check_flags(defaults)
