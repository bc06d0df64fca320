"""A recipe: an optimizer's rules in the four-step order, and the one function that runs them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
from torch import Tensor

from ..rules.base import Direction, FirstMoment, GradientRule, LrSchedule, Rule, SecondMoment
from ..rules.first_moment import Gradient
from ..rules.gradient import Maximize, WeightDecay
from ..rules.second_moment import NoSecondMoment
from .bundle import Bundle
from .tensorlist import TensorList

# The order in which torch.optim's algorithms create their state keys.
_TORCH_ORDER = {
    key: i
    for i, key in enumerate(
        ("step", "mu_product", "square_avg", "momentum_buffer", "grad_avg", "acc_delta", "sum",
         "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    )
}


def _default_gradient_rules() -> tuple[GradientRule, ...]:
    return (Maximize(), WeightDecay())


@dataclass(frozen=True)
class Recipe:
    """An optimizer as the seed's four steps: gradient rules, ψ, φ, learning-rate schedule.

    Attributes:
        first: φ, the first-moment rule (gives the direction).
        second: ψ, the second-moment rule (gives the denominator √V).
        gradient: rules applied to ``g`` (and ``w``) before the moments, in order.
        schedule: factors on the learning rate.
        counts_steps: keep a ``step`` count per parameter (torch's SGD does not).
        eager_state: create state for the constructor's parameters at construction
            (torch's Adagrad does), not at their first step.
    """

    first: FirstMoment = field(default_factory=Gradient)
    second: SecondMoment = field(default_factory=NoSecondMoment)
    gradient: tuple[GradientRule, ...] = field(default_factory=_default_gradient_rules)
    schedule: tuple[LrSchedule, ...] = ()
    counts_steps: bool = True
    eager_state: bool = False

    @cached_property
    def rules(self) -> tuple[Rule, ...]:
        return (*self.gradient, self.first, self.second, *self.schedule)

    @cached_property
    def scalar_state(self) -> tuple[str, ...]:
        """Names of the 0-d state tensors (the step count first)."""
        own = tuple(name for rule in self.rules for name in rule.scalar_state)
        return (("step",) if self.counts_steps else ()) + own

    def hyperparameters(self) -> dict[str, Any]:
        """Every group key the rules read, with the rules' default values."""
        merged: dict[str, Any] = {"lr": 1e-3}
        for rule in self.rules:
            merged.update(rule.hyperparameters)
        return merged

    def lazy_state(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(key for rule in self.rules for key in rule.lazy_state(group))

    def check_sparse(self, group: Mapping[str, Any]) -> None:
        """Raise if a rule cannot take a sparse gradient under ``group``'s hyperparameters."""
        for rule in self.rules:
            rule.check_sparse(group)

    def init_state(
        self,
        param: Tensor,
        group: Mapping[str, Any],
        state: dict[str, Any],
        defaults: Mapping[str, Any],
        step: Tensor | None,
    ) -> None:
        """Create the state of a parameter before its first step (``step`` is its counter)."""
        created: dict[str, Any] = {} if step is None else {"step": step}
        for rule in self.rules:
            rule.init_state(param, group, created, defaults)
        # torch.optim's key order (state_dict layout), then any other keys as created.
        for key in sorted(created, key=lambda k: _TORCH_ORDER.get(k, len(_TORCH_ORDER))):
            state[key] = created[key]

    def run(self, b: Bundle) -> None:
        """One step on the bundle: the four steps of the framework."""
        g = b.grad
        for rule in self.gradient:  # 1. gradient
            g = rule.apply(b, g)
        denom = self.second.denominator(b, g)  # 2. ψ then φ
        direction = self.first.direction(b, g, denom)
        lr = b.hp["lr"]  # 3. step size
        for rule in self.schedule:
            lr = lr * rule.factor(b)
        if b.observer is not None:
            b.observer(b, g, denom, direction, lr)
        apply_step(b, direction, lr)  # 4. update

    def describe(self, group: Mapping[str, Any]) -> list[tuple[str, str]]:
        """The four steps as (step name, formula) pairs for ``group``'s hyperparameters
        (φ listed before ψ, as the framework states them; :meth:`run` computes ψ first,
        since φ may divide by its denominator)."""
        gradient = [r.formula(group) for r in self.gradient]
        schedule = [r.formula(group) for r in self.schedule] or ["α_t = α"]
        lines = [
            ("1. gradient", ";  ".join(line for line in gradient if line)),
            ("2. φ (first moment)", self.first.formula(group)),  # the seed's order; the
            ("2. ψ (second moment)", self.second.formula(group)),  # step computes ψ first
            ("3. step", "η = α_t·m/√V;  " + ";  ".join(schedule)),
            ("4. update", "w ← w − η"),
        ]
        return lines


def apply_step(b: Bundle, direction: Direction, lr: Any) -> None:
    """``w ← w − lr · Σ coef·tensor/denom`` over the direction's terms."""
    w = b.param
    for term in direction:
        scale = -lr * term.coef
        if isinstance(scale, Tensor) and b.differentiable:
            step = term.tensor if term.denom is None else term.tensor / term.denom
            w.add_(step * scale)
        elif term.tensor.is_sparse:
            w.add_(_sparse_quotient(term.tensor, term.denom), alpha=scale)
        elif term.denom is None:
            w.add_(term.tensor, alpha=scale)
        else:
            w.addcdiv_(term.tensor, term.denom, value=scale)


def _sparse_quotient(num: Tensor, denom: Tensor | TensorList | None) -> Tensor:
    """``num / denom`` for a coalesced sparse ``num`` and a sparse ``denom`` on its indices."""
    if denom is None:
        return num
    return torch.sparse_coo_tensor(num._indices(), num._values() / denom._values(), num.size())
