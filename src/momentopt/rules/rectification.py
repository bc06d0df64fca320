"""RAdam's rectification: the adaptive step only once its variance is tractable.

Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond" (ICLR 2020). The
adaptive learning rate ``√((1 − β2^t)/v_t)`` of an EMA of squares behaves like the inverse
root of a simple moving average of ``ρ_t`` squared gradients, with

.. math::
    ρ_∞ = \\frac{2}{1 − β_2} − 1, \\qquad ρ_t = ρ_∞ − \\frac{2 t β_2^t}{1 − β_2^t}.

Its variance is finite only for ``ρ_t > 4`` and is brought to that of ``ρ_∞`` samples by

.. math::
    r_t = \\sqrt{\\frac{(ρ_t − 4)(ρ_t − 2)\\, ρ_∞}{(ρ_∞ − 4)(ρ_∞ − 2)\\, ρ_t}}.

While ``ρ_t ≤ 5`` (the first steps) the update is the un-adapted momentum step ``α·m̂``;
after, ``α·r_t·√(1 − β2^t)·m̂/(√v + ε)``. The two halves of that switch are two rules that
read the same ``ρ_t``: :class:`RectifiedSquaredAverage` gives no denominator while the
variance is intractable, and :class:`Rectification` scales the step size once it is. The
structure of the step (whether it divides by ``√v + ε``) thus changes with ``t``: a path
that records the step (the compiled one) records it per step and keys its kernels by that
structure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import LrSchedule
from .contract import Scalar, UpdateView
from .second_moment import RawSquaredAverage

THRESHOLD = 5.0
"""The step is adapted (and rectified) only where ``ρ_t`` exceeds this (Liu et al.'s choice,
and torch.optim's)."""


def sma_lengths(beta2: Scalar, t: float) -> tuple[Scalar, Scalar]:
    """``(ρ_∞, ρ_t)``: the length of the simple moving average the EMA approximates, in the
    limit and at step ``t``."""
    rho_inf = 2 / (1 - beta2) - 1
    return rho_inf, rho_inf - 2 * t * (beta2**t) / (1 - beta2**t)


def rectification(beta2: Scalar, t: float) -> Scalar | None:
    """``r_t`` at step ``t``, or None while ``ρ_t ≤ 5`` (the step is not adapted)."""
    rho_inf, rho_t = sma_lengths(beta2, t)
    if not rho_t > THRESHOLD:
        return None
    return ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5


class RectifiedSquaredAverage(RawSquaredAverage):
    """RAdam's second moment: ``v ← β2·v + (1−β2)·g²`` at every step; the denominator
    ``√v + ε`` only once ``ρ_t > 5`` (none before: the un-adapted step). Pair it with
    :class:`Rectification`. State ``exp_avg_sq``.
    """

    def denominator(self, view: UpdateView, g: Any) -> Any:
        v = self.average(view, g)
        _, beta2 = view.group["betas"]
        if rectification(beta2, view.t) is None:
            return None
        return v.sqrt().add_(view.group["eps"])

    def formula(self, group: Mapping[str, Any]) -> str:
        return "v ← β2·v + (1−β2)·g²   (exp_avg_sq);  √v + ε once ρ_t > 5, else 1"


class Rectification(LrSchedule):
    """RAdam's step size: ``α_t = α·r_t·√(1 − β2^t)`` once ``ρ_t > 5``, ``α`` before (see
    the module's docstring). Pair it with :class:`RectifiedSquaredAverage`."""

    hyperparameters = {"betas": (0.9, 0.999)}

    def lr(self, view: UpdateView, lr: Scalar) -> Scalar:
        _, beta2 = view.group["betas"]
        rect = rectification(beta2, view.t)
        if rect is None:
            return lr
        return lr * (rect * (1 - beta2**view.t) ** 0.5)

    def formula(self, group: Mapping[str, Any]) -> str:
        return (
            "ρ_∞ = 2/(1−β2) − 1;  ρ_t = ρ_∞ − 2t·β2^t/(1−β2^t);  "
            "α_t = α·r_t·√(1−β2^t), r_t = √((ρ_t−4)(ρ_t−2)ρ_∞ / ((ρ_∞−4)(ρ_∞−2)ρ_t)) once ρ_t > 5, "
            "else α"
        )
