"""Rules that change the final direction: after φ (and ψ) gave the step's direction and before
the update, a :class:`DirectionRule` turns the whole direction into another one.

The direction is the sum of its terms, ``u = Σ coef/divisor · tensor/denom``
(:data:`~.base.Direction`); the update is ``w ← w − α_t·u``. Lion takes the sign of ``u``
(:class:`Sign`), cautious optimizers keep ``u`` only where it agrees with the gradient
(:class:`Cautious`). Both are written once, for any recipe.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Direction, Rule, Term
from .contract import UpdateView


class DirectionRule(Rule):
    """Between steps 2 and 3: a function of the whole direction ``u`` (and the gradient ``g``
    the moments saw), applied before the update ``w ← w − α_t·u``."""

    def active(self, group: Mapping[str, Any]) -> bool:
        """Whether the rule changes the direction under ``group``'s hyperparameters (a torch
        kernel computes a recipe only where none does)."""
        return True

    def modify(self, view: UpdateView, g: Any, direction: Direction) -> Direction:
        """The new direction, from ``direction`` and the gradient ``g``."""
        raise NotImplementedError


def combined(direction: Direction) -> Any:
    """``u = Σ coef/divisor · tensor/denom``, the direction as one tensor. A lone term with no
    factor and no denominator is returned as it is (not copied: compute out of place with it)."""
    first, *rest = direction
    if not rest and first.denom is None and _is_one(first.coef) and _is_one(first.divisor):
        return first.tensor
    total = None
    for term in direction:
        x = term.tensor if term.denom is None else term.tensor.div(term.denom)
        factor = term.coef if _is_one(term.divisor) else term.coef / term.divisor
        if total is not None:
            total.add_(x, alpha=factor)
        elif _is_one(factor):
            total = x if term.denom is not None else x.clone()
        else:
            total = x.mul(factor)
    return total


def _is_one(x: Any) -> bool:
    return isinstance(x, (int, float)) and x == 1


class Sign(DirectionRule):
    """The direction's sign, elementwise: ``u ← sign(u)`` (Lion: Chen et al., "Symbolic
    Discovery of Optimization Algorithms", NeurIPS 2023, Algorithm 2). Every coordinate moves
    by the step size, whatever the size of its moment; a zero stays zero."""

    def modify(self, view: UpdateView, g: Any, direction: Direction) -> Direction:
        return [Term(combined(direction).sign())] if direction else direction

    def formula(self, group: Mapping[str, Any]) -> str:
        return "u ← sign(u)"


CAUTIOUS_MIN_MEAN = 1e-3
"""The least mask mean :class:`Cautious` divides by (the reference implementation's clamp)."""


class Cautious(DirectionRule):
    """The cautious update (Liang, Chen, Liu & Liu, "Cautious Optimizers: Improving Training
    with One Line of Code", 2024, Algorithm 2), for any direction ``u`` (before ``−α_t``):

    .. math::
        φ = \\mathbb{1}[u ∘ g > 0], \\qquad
        u ← u ∘ φ \\,/\\, \\max(\\operatorname{mean}(φ), 10^{-3})

    per tensor, where ``g`` is the gradient the moments saw (after ``maximize`` and coupled
    decay): a coordinate where the step would go uphill does not move, and the others are
    scaled up so the update keeps its size on average. The normalisation is the reference
    repository's (kyleliang919/C-Optim, ``mask.div_(mask.mean().clamp_(min=1e-3))``; the
    paper's ``d/(nnz(φ) + 1)`` is its original form). Decoupled weight decay is not masked:
    it shrinks ``w`` before the step, as C-AdamW applies it. On with the group's ``cautious``
    flag (off: the direction is unchanged).
    """

    hyperparameters = {"cautious": False}

    def active(self, group: Mapping[str, Any]) -> bool:
        return bool(group.get("cautious", False))

    def modify(self, view: UpdateView, g: Any, direction: Direction) -> Direction:
        if not direction or not self.active(view.group):
            return direction
        agree = combined(direction).mul(g)
        keep = agree.gt(0)
        mask = agree.zero_().masked_fill_(keep, 1)
        mask.div_(mask.mean().clamp_min_(CAUTIOUS_MIN_MEAN))
        return [Term(t.tensor.mul(mask), t.coef, t.denom, t.divisor) for t in direction]

    def formula(self, group: Mapping[str, Any]) -> str:
        if not self.active(group):
            return ""
        return "φ = 1[u·g > 0];  u ← u·φ / max(mean(φ), 1e-3)   (cautious)"
