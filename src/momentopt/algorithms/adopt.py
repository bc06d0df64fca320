"""ADOPT: Adam's moments in the other order (Taniguchi et al., 2024), as torch-adopt 0.1.0 has it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from torch import Tensor

from ..rules import DecayFromFirstUpdate, Maximize, NormalizedAverage, PreviousSquaredAverage
from .adam import _check_lr
from .hyperparameters import (
    BETAS,
    CAPTURABLE,
    DIFFERENTIABLE,
    EPS,
    FOREACH,
    FUSED,
    MAXIMIZE,
    WEIGHT_DECAY,
    Hyperparameter,
    HyperparameterTable,
)
from .options import StatePrecision, with_options
from .reference_compat import reference_recipe
from .table_driven import TableDrivenOptimizer

TORCH_ADOPT = "torch-adopt 0.1.0"


def default_clip(step: float) -> float:
    """ADOPT's default clipping bound ``c(s) = s^{1/4}`` of the step count ``s`` before the
    step (torch-adopt's ``lambda step: step**0.25``, as a function that pickles)."""
    return step**0.25


HYPERPARAMETERS = HyperparameterTable(
    Hyperparameter("lr", 1e-3, since=TORCH_ADOPT, check=_check_lr),
    BETAS.of((0.9, 0.9999), since=TORCH_ADOPT),
    EPS.of(1e-6, since=TORCH_ADOPT),
    WEIGHT_DECAY.of(0.0, since=TORCH_ADOPT),
    Hyperparameter("decouple", False, since=TORCH_ADOPT),
    MAXIMIZE.of(since=TORCH_ADOPT, on_load=False),
    FOREACH.of(since=TORCH_ADOPT, on_load=None),
    CAPTURABLE.of(since=TORCH_ADOPT, on_load=False),
    DIFFERENTIABLE.of(since=TORCH_ADOPT, on_load=False),
    FUSED.of(since=TORCH_ADOPT, on_load=None),
    checks=("lr", "eps", "betas", "weight_decay"),
    checks_after_init=("fused",),
)
"""``adopt.ADOPT``'s hyperparameters (torch's texts: torch-adopt's checks are torch's Adam's);
``clip_lambda`` is kept on the optimizer, not in the groups, as torch-adopt keeps it."""


class ADOPT(TableDrivenOptimizer):
    """ADOPT (Taniguchi et al., "ADOPT: Modified Adam Can Converge with Any β2 with the
    Optimal Rate", NeurIPS 2024, Algorithm 2 with clipping), numerically ``adopt.ADOPT``
    (torch-adopt 0.1.0).

    .. math::
        V_0 = g_0^2; \\qquad
        m_t = β_1 m_{t−1} + (1 − β_1) \\operatorname{clip}\\big(g_t / \\max(\\sqrt{V_{t−1}}, ε),
        c(t − 1)\\big), \\quad w_t = w_{t−1} − α m_t, \\quad
        V_t = β_2 V_{t−1} + (1 − β_2) g_t^2

    The first step sets ``V₀`` and moves nothing. ``clip_lambda`` is ``c`` (None: no
    clipping); ``weight_decay`` is coupled (``g + λw``) or with ``decouple`` decoupled
    (``w − αλw``, from the second step). State ``step``, ``exp_avg``, ``exp_avg_sq``.
    Where torch-adopt's ``foreach=True`` path takes the first parameter's step count for the
    whole bucket, momentopt keeps each parameter's (as its default, per-parameter path does);
    ``fused=True`` compiles the step (torch-adopt refuses it).
    """

    recipe = reference_recipe(
        NormalizedAverage(),
        PreviousSquaredAverage(),
        gradient=(Maximize(), DecayFromFirstUpdate()),
        state_order=("exp_avg", "exp_avg_sq"),
    )
    hyperparameter_table: ClassVar[HyperparameterTable] = HYPERPARAMETERS

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.9999),
        eps: float = 1e-6,
        clip_lambda: Callable[[float], float] | None = default_clip,
        weight_decay: float = 0.0,
        decouple: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        cautious: bool = False,
        state_precision: StatePrecision = None,
    ) -> None:
        table = self.hyperparameter_table
        defaults = table.defaults_from(locals())
        table.check_values(defaults)
        self.clip_lambda = clip_lambda
        super().__init__(params, with_options(defaults, cautious, state_precision))
        table.check_flags(defaults)

    def check_step_group(self, group: Mapping[str, Any]) -> None:
        """The step unpacks ``betas`` first (another length: ValueError), as torch-adopt's."""
        super().check_step_group(group)
        _beta1, _beta2 = group["betas"]

    def step_hyperparameters(
        self, group: Mapping[str, Any], params: list[Tensor]
    ) -> Mapping[str, Any]:
        """The group with the optimizer's ``clip_lambda``, which the rules read."""
        return {**group, "clip_lambda": self.clip_lambda}

    def describe(self, group: int = 0) -> list[tuple[str, str]]:
        """The four steps for ``param_groups[group]``, with the optimizer's ``clip_lambda``."""
        return self.recipe.describe({**self.param_groups[group], "clip_lambda": self.clip_lambda})

    def __getstate__(self) -> dict[str, Any]:
        """torch's state, and ``clip_lambda`` (so a copy clips as the original does)."""
        return {**super().__getstate__(), "clip_lambda": self.clip_lambda}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """torch's, and ``clip_lambda`` from a copy's state (``load_state_dict`` keeps the
        optimizer's own; a state without one, the default)."""
        state = dict(state)
        if "clip_lambda" in state:
            self.clip_lambda = state.pop("clip_lambda")
        elif not hasattr(self, "clip_lambda"):
            self.clip_lambda = default_clip
        super().__setstate__(state)

    @classmethod
    def flag_defaults(cls) -> dict[str, Any]:
        """Group keys filled in when a loaded state_dict lacks them (torch-adopt's list)."""
        return cls.hyperparameter_table.load_defaults()
