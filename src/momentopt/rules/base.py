"""What every rule is: one piece of the four-step framework, with its declared state.

The four steps, for one parameter ``w`` at step ``t``:

1. gradient ``g = ∇f(w)``, shaped by :class:`GradientRule` s (maximize, weight decay);
2. moments: the :class:`SecondMoment` rule ψ turns ``g`` into a denominator ``√V`` (or none),
   the :class:`FirstMoment` rule φ turns ``g`` (and ``√V``) into a :data:`Direction`;
3. step ``η = α_t · m / √V``, where :class:`LrSchedule` rules turn ``α`` into ``α_t``;
4. update ``w ← w − η`` (done by whatever runs the rules, never by a rule);

and, after the update, :class:`AfterUpdate` rules keep what follows the new weights (an
average of the iterates, the step size of the next step).

A rule reads its hyperparameters from the param group by their torch.optim names, declares
its state (:class:`~.contract.StateSpec`, under torch.optim's key names) and writes its math
once against :class:`~.contract.UpdateView` and the tensor vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from .contract import Scalar, StateSpec, UpdateView


@dataclass
class Term:
    """One summand of the step: ``coef / divisor · tensor / denom`` (``denom`` None means 1).

    The scalar factor is kept as ``coef`` and ``divisor`` so the update computes
    ``(−α_t · coef) / divisor`` in that order, as torch.optim rounds it.
    """

    tensor: Any
    coef: Scalar = 1.0
    denom: Any = None
    divisor: Scalar = 1.0


Direction = list[Term]
"""The step before the learning rate: ``w ← w − α_t · Σ terms``."""


class Rule:
    """Base of all rules.

    Class attributes:
        hyperparameters: the param-group keys the rule reads, with the values an optimizer
            composed from it (:func:`momentopt.compose`) takes by default.
        state: the state the rule keeps (see :class:`~.contract.StateSpec`).
    """

    hyperparameters: ClassVar[Mapping[str, Any]] = {}
    state: ClassVar[tuple[StateSpec, ...]] = ()

    def densifies_sparse(self, group: Mapping[str, Any]) -> bool:
        """Whether, under ``group``'s hyperparameters, the rule would turn a sparse gradient
        into a dense one (so a sparse gradient cannot be used; default: no)."""
        return False

    def formula(self, group: Mapping[str, Any]) -> str:
        """The rule's math for ``group``'s hyperparameters, one line per update."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class GradientRule(Rule):
    """Step 1: shapes the gradient (and may change the weights before the step)."""

    def apply(self, view: UpdateView, g: Any) -> Any:
        """The gradient the moments see, from ``g``."""
        raise NotImplementedError


class SecondMoment(Rule):
    """Step 2, ψ: updates ``V`` from ``g`` and returns the denominator ``√V`` (None for 1)."""

    def denominator(self, view: UpdateView, g: Any) -> Any:
        """Update ``V`` and return ``√V`` (with its ε), or None for ``V = 1``."""
        raise NotImplementedError


class FirstMoment(Rule):
    """Step 2, φ: updates ``m`` from ``g`` and returns the step direction, given ``√V``."""

    def direction(self, view: UpdateView, g: Any, denom: Any) -> Direction:
        """Update ``m`` and return the direction's terms."""
        raise NotImplementedError


class LrSchedule(Rule):
    """Step 3: the learning rate ``α_t`` at step ``t`` from the group's ``α``."""

    def lr(self, view: UpdateView, lr: Scalar) -> Scalar:
        """``α_t`` for this step, from ``lr`` (the group's, or an earlier schedule's)."""
        raise NotImplementedError


class AfterUpdate(Rule):
    """After step 4: reads the updated weights ``w`` and keeps state that follows them — an
    average of the iterates (Polyak & Juditsky, "Acceleration of Stochastic Approximation by
    Averaging", SIAM J. Control Optim. 1992), the step size of the next step.

    It writes its math with the same tensor vocabulary, so it runs on every path; it may also
    move ``w`` itself (a second iterate sequence that the parameters follow). A rule of
    another step may be an AfterUpdate too (a schedule that keeps its step size in state and
    computes the next one after the update): the recipe runs the ``after`` of every rule it
    holds that is one, in the recipe's order, the rules of its ``after`` slot last.
    """

    def after(self, view: UpdateView) -> None:
        """Update the rule's state from the updated ``view.param`` (and ``t``, the group)."""
        raise NotImplementedError

    def after_formula(self, group: Mapping[str, Any]) -> str:
        """The math of :meth:`after` for ``group``'s hyperparameters."""
        raise NotImplementedError

    def formula(self, group: Mapping[str, Any]) -> str:
        return self.after_formula(group)


class GroupSchedule(Rule):
    """A schedule of the whole param group: advanced once per step of the group (whether or
    not its parameters have gradients), before its tensors step. It keeps its counters in the
    param group itself, under ``hyperparameters`` keys (schedule-free's ``k`` and
    ``weight_sum``, as its reference implementation keeps them, so their checkpoints load),
    and gives this step's values to the rules, which read them from the group.

    A rule of another step may be a GroupSchedule too (a learning-rate schedule that keeps its
    own count).
    """

    def advance(self, group: MutableMapping[str, Any]) -> dict[str, Any]:
        """Advance the counters in ``group`` (in place) and return this step's values (keys
        the rules read from the group during the step)."""
        raise NotImplementedError


class ReducedScalar(Rule):
    """A scalar of the whole optimizer, shared by every param group and re-estimated before
    each step from sums over all its parameters — and over all processes, where they hold
    shards of the parameters (Prodigy's step-size estimate ``d``).

    Whatever runs the recipe runs it in three parts: :meth:`begin` gives this step's shared
    values from the groups; :meth:`contribute` runs over every parameter with a gradient (every
    group, tensors in buckets) and returns its share of each of the :attr:`sums`, updating the
    rule's own state; :meth:`finish` gets the sums (added in parameter order; then across
    processes where :meth:`sharded`), writes the new scalar into the groups and returns the
    values the step's rules read from their group (or None: no step this time, and
    :meth:`skipped` runs over every parameter instead). Then every group steps.
    """

    sums: ClassVar[int] = 1
    """How many sums :meth:`contribute` adds to."""

    def begin(self, groups: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """This step's shared values (``contribute`` reads them from the view's group)."""
        raise NotImplementedError

    def contribute(self, view: UpdateView) -> tuple[Any, ...]:
        """Each sum's share of ``view``'s tensors (a number, or per tensor of a bucket)."""
        raise NotImplementedError

    def sharded(self, groups: Sequence[Mapping[str, Any]]) -> bool:
        """Whether the parameters are shards, so the sums are also added across processes."""
        return False

    def skipped(self, view: UpdateView) -> None:
        """What ``view``'s state does on a step :meth:`finish` refused (it returned None), as
        :meth:`contribute` saw it: nothing by default (prodigyopt still decays its averages)."""

    def finish(
        self,
        groups: Sequence[MutableMapping[str, Any]],
        sums: Sequence[float],
        shared: Mapping[str, Any],
    ) -> dict[str, Any] | None:
        """Write the new scalar into ``groups``; the values the step's rules read, or None."""
        raise NotImplementedError
