"""What every rule is: a named piece of the four-step framework with its own state.

The four steps (the seed's unified framework), for one parameter ``w`` at step ``t``:

1. gradient ``g = ∇f(w)``, shaped by :class:`GradientRule` s (maximize, weight decay);
2. moments: the :class:`SecondMoment` rule ψ turns ``g`` into a denominator ``√V`` (or none),
   the :class:`FirstMoment` rule φ turns ``g`` (and ``√V``) into a :data:`Direction`;
3. step ``η = α_t · m / √V``, where :class:`LrSchedule` rules give ``α_t``;
4. update ``w ← w − η`` (done by the engine, never by a rule).

A rule reads its hyperparameters from the param group by their torch.optim names, declares
the state it keeps under torch.optim's key names, and writes its math once against the
tensor method vocabulary, so the per-tensor and multi-tensor executors both run it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from ..engine.bundle import Bundle
from ..engine.tensorlist import Tensors

Scalar = float | Tensor


@dataclass
class Term:
    """One summand of the step: ``coef · tensor / denom`` (``denom`` None means 1)."""

    tensor: Tensors
    coef: Scalar = 1.0
    denom: Tensors | None = None


Direction = list[Term]
"""The step before the learning rate: ``w ← w − α_t · Σ terms``."""


class Rule:
    """Base of all rules.

    Class attributes:
        role: which step of the framework the rule fills ("gradient", "first", "second",
            "schedule").
        hyperparameters: the param-group keys the rule reads, with their default values.
        scalar_state: names of 0-d state tensors the rule keeps (besides ``step``).
    """

    role: ClassVar[str] = ""
    hyperparameters: ClassVar[Mapping[str, Any]] = {}
    scalar_state: ClassVar[tuple[str, ...]] = ()

    def init_state(
        self, param: Tensor, group: Mapping[str, Any], state: dict[str, Any], defaults: Mapping[str, Any]
    ) -> None:
        """Create this rule's state for ``param`` before its first step (default: none)."""

    def check_sparse(self, group: Mapping[str, Any]) -> None:
        """Raise torch's error if the rule cannot use a sparse gradient (default: it can)."""

    def lazy_state(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        """State keys created during a step rather than before it (see SGD's buffer)."""
        return ()

    def formula(self, group: Mapping[str, Any]) -> str:
        """The rule's math for ``group``'s hyperparameters, one line per update."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class GradientRule(Rule):
    """Step 1: shapes the gradient (and may change the weights before the step)."""

    role = "gradient"

    def apply(self, b: Bundle, g: Tensors) -> Tensors:
        raise NotImplementedError


class SecondMoment(Rule):
    """Step 2, ψ: updates ``V`` from ``g`` and returns the denominator ``√V`` (None for 1)."""

    role = "second"

    def denominator(self, b: Bundle, g: Tensors) -> Tensors | None:
        raise NotImplementedError


class FirstMoment(Rule):
    """Step 2, φ: updates ``m`` from ``g`` and returns the step direction, given ``√V``."""

    role = "first"

    def direction(self, b: Bundle, g: Tensors, denom: Tensors | None) -> Direction:
        raise NotImplementedError


class LrSchedule(Rule):
    """Step 3: a factor on the learning rate that depends on ``t`` (e.g. AdaGrad's lr_decay)."""

    role = "schedule"

    def factor(self, b: Bundle) -> Scalar:
        raise NotImplementedError
