"""A recipe: an optimizer's rules in the four-step order, and the one function that runs them."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from torch import Tensor

from ..rules.base import (
    AfterUpdate,
    Direction,
    FirstMoment,
    GradientRule,
    GroupSchedule,
    LrSchedule,
    ReducedScalar,
    Rule,
    SecondMoment,
)
from ..rules.direction import DirectionRule
from .state import StateLayout


@dataclass(frozen=True)
class Recipe:
    """An optimizer as the four steps: gradient rules, ψ, φ, learning-rate schedule; and the
    rules that run after the update.

    Attributes:
        first: φ, the first-moment rule (gives the direction).
        second: ψ, the second-moment rule (gives the denominator √V).
        gradient: rules applied to ``g`` (and ``w``) before the moments, in order.
        schedule: rules that turn the group's learning rate into ``α_t``, in order.
        direction: rules that change the whole direction after φ, in order (a sign, a mask).
        reduced: a scalar of the whole optimizer re-estimated before each step from sums over
            all parameters (:class:`~momentopt.rules.base.ReducedScalar`), or None.
        after: rules that run after the update (:class:`~momentopt.rules.base.AfterUpdate`),
            in order, after those of the other slots that are AfterUpdate rules too.
        counts_steps: keep a ``step`` count per parameter.
        eager_state: create state for the constructor's parameters at construction, not at
            their first step.
        state_order: state_dict key order for the names listed (the rest follow as the
            rules declare them).
        fill_from_defaults: see :class:`~.state.StateLayout`.
    """

    first: FirstMoment
    second: SecondMoment
    gradient: tuple[GradientRule, ...] = ()
    schedule: tuple[LrSchedule, ...] = ()
    after: tuple[AfterUpdate, ...] = ()
    direction: tuple[DirectionRule, ...] = ()
    reduced: ReducedScalar | None = None
    counts_steps: bool = True
    eager_state: bool = False
    state_order: Sequence[str] = field(default=())
    fill_from_defaults: bool = False

    @cached_property
    def rules(self) -> tuple[Rule, ...]:
        return (
            *self.gradient,
            self.first,
            self.second,
            *self.direction,
            *self.schedule,
            *self.after,
            *((self.reduced,) if self.reduced is not None else ()),
        )

    @cached_property
    def after_rules(self) -> tuple[AfterUpdate, ...]:
        """The rules whose ``after`` runs after the update, in the order it runs them."""
        return tuple(rule for rule in self.rules if isinstance(rule, AfterUpdate))

    @cached_property
    def state(self) -> StateLayout:
        """The recipe's state, from the rules' declarations."""
        return StateLayout.of(
            [spec for rule in self.rules for spec in rule.state],
            counts_steps=self.counts_steps,
            order=self.state_order,
            fill_from_defaults=self.fill_from_defaults,
        )

    def hyperparameters(self) -> dict[str, Any]:
        """Every group key the rules read, with the rules' default values."""
        merged: dict[str, Any] = {"lr": 1e-3}
        for rule in self.rules:
            merged.update(rule.hyperparameters)
        return merged

    def densifying_rules(self, group: Mapping[str, Any]) -> list[Rule]:
        """The rules that would make a sparse gradient dense under ``group``."""
        return [rule for rule in self.rules if rule.densifies_sparse(group)]

    @cached_property
    def group_schedules(self) -> tuple[GroupSchedule, ...]:
        """The rules advanced once per step of a group, in the recipe's order."""
        return tuple(rule for rule in self.rules if isinstance(rule, GroupSchedule))

    def advance_group(self, group: MutableMapping[str, Any]) -> dict[str, Any]:
        """Advance the group schedules' counters in ``group`` (once per step of the group) and
        return this step's values, which the rules read from the group."""
        values: dict[str, Any] = {}
        for rule in self.group_schedules:
            values.update(rule.advance(group))
        return values

    def changes_direction(self, group: Mapping[str, Any]) -> bool:
        """Whether a direction rule changes the direction under ``group`` (torch's kernels
        compute recipes without one)."""
        return any(rule.active(group) for rule in self.direction)

    def run(self, view: Any) -> None:
        """One step on ``view`` (an :class:`~momentopt.rules.contract.UpdateView` that also
        offers ``add_to_param`` and ``observer``): the four steps of the framework. The step
        size is computed first: ``α_t`` depends on what the step starts from (``t``, ``α``, the
        weights before any decay), never on the gradient."""
        lr = view.group["lr"]  # 3. step size
        for rule in self.schedule:
            lr = rule.lr(view, lr)
        g = view.grad
        for rule in self.gradient:  # 1. gradient
            g = rule.apply(view, g)
        denom = self.second.denominator(view, g)  # 2. ψ then φ (φ may divide by √V)
        seen = denom  # what the observer is shown: √V as ψ gave it, before a φ writes into it
        if view.observer is not None and denom is not None:
            seen = denom.clone()
        direction = self.first.direction(view, g, denom)
        for modifier in self.direction:  # the whole direction changed (a sign, a mask)
            direction = modifier.modify(view, g, direction)
        if view.observer is not None:
            view.observer(view, g, seen, direction, lr)
        update(view, direction, lr)  # 4. update
        for rule in self.after_rules:  # after the update: averages, the next step size
            rule.after(view)

    def describe(self, group: Mapping[str, Any]) -> list[tuple[str, str]]:
        """The four steps as (step name, formula) pairs for ``group``'s hyperparameters
        (φ listed before ψ, as the framework states them; :meth:`run` computes ψ first,
        since φ may divide by its denominator)."""
        gradient = [r.formula(group) for r in self.gradient]
        schedule = [r.formula(group) for r in self.schedule] or ["α_t = α"]
        return [
            *(
                [("0. shared scalar", self.reduced.formula(group))]
                if self.reduced is not None
                else []
            ),
            ("1. gradient", ";  ".join(line for line in gradient if line)),
            ("2. φ (first moment)", self.first.formula(group)),
            ("2. ψ (second moment)", self.second.formula(group)),
            *(
                [("2. direction u", ";  ".join(changes))]
                if (changes := [line for r in self.direction if (line := r.formula(group))])
                else []
            ),
            ("3. step", "η = α_t·m/√V;  " + ";  ".join(schedule)),
            ("4. update", "w ← w − η"),
            *(
                [("after the update", ";  ".join(r.after_formula(group) for r in self.after_rules))]
                if self.after_rules
                else []
            ),
        ]


def term_scale(lr: Any, coef: Any, divisor: Any) -> Any:
    """``(−α_t · coef) / divisor``, the factor of one term, in torch.optim's order of
    rounding (``−lr / bias_correction``, ``−lr·(1−μ)/(1−Π)``)."""
    scale = -lr * coef
    if isinstance(divisor, Tensor) or divisor != 1:
        scale = scale / divisor
    return scale


def update(view: Any, direction: Direction, lr: Any) -> None:
    """Step 4: ``w ← w − α_t · Σ coef/divisor · tensor/denom`` over the direction's terms."""
    for term in direction:
        view.add_to_param(term.tensor, term.denom, term_scale(lr, term.coef, term.divisor))
