"""First moments that mix: the gradient with the momentum under one coefficient while the
momentum is kept under another (Lion), and a fast with a slow average whose coefficients follow
schedules (AdEMAMix)."""

from __future__ import annotations

from collections.abc import Mapping
from math import log
from typing import Any

from .averages import ema_
from .base import Direction, FirstMoment, Term
from .contract import StateSpec, UpdateView


class InterpolatedMomentum(FirstMoment):
    """Lion's first moment (Chen et al., "Symbolic Discovery of Optimization Algorithms",
    NeurIPS 2023, Algorithm 2): the step interpolates momentum and gradient with β1, while
    the momentum is kept with β2.

    .. math::
        c_t = β_1 m_{t−1} + (1 − β_1) g_t, \\qquad m_t = β_2 m_{t−1} + (1 − β_2) g_t

    The direction is ``c_t`` (Lion takes its sign, :class:`~.direction.Sign`). State
    ``exp_avg``.
    """

    hyperparameters = {"betas": (0.9, 0.99)}
    state = (StateSpec("exp_avg"),)

    def direction(self, view: UpdateView, g: Any, denom: Any) -> Direction:
        beta1, beta2 = view.group["betas"]
        exp_avg = view.state("exp_avg")
        c = exp_avg.mul(beta1).add_(g, alpha=1 - beta1)
        exp_avg.mul_(beta2).add_(g, alpha=1 - beta2)
        return [Term(c, 1.0, denom)]

    def formula(self, group: Mapping[str, Any]) -> str:
        return "u = β1·m + (1−β1)·g;  m ← β2·m + (1−β2)·g   (exp_avg)"


# -- schedules of a coefficient (AdEMAMix's warm-ups) ------------------------------------------
def linear_warmup(t: float, end: Any, start: float, warmup: float) -> Any:
    """The value ``a·end + (1 − a)·start`` at step ``t`` of a linear warm-up over ``warmup``
    steps (``a = t/warmup``), then ``end`` (Pagliardini, Ablin & Grangier, "The AdEMAMix
    Optimizer: Better, Faster, Older", 2024, the α scheduler of Algorithm 1; its reference
    implementation's order of operations)."""
    if t < warmup:
        a = t / float(warmup)
        return (1.0 - a) * start + a * end
    return end


def half_life(beta: Any) -> Any:
    """The half-life of an average with coefficient β, less one step: ``ln ½ / ln(β + 1e-8) − 1``
    (the 1e-8 of AdEMAMix's reference implementation keeps β = 1 finite)."""
    return log(0.5) / log(beta + 1e-8) - 1


def half_life_warmup(t: float, end: Any, start: Any, warmup: float) -> Any:
    """The coefficient at step ``t`` of a warm-up from ``start`` to ``end`` over ``warmup`` steps
    that is linear in the half-life (AdEMAMix's β3 scheduler, Pagliardini et al., 2024,
    Algorithm 1): ``h = (1 − a)·h(start) + a·h(end)``, ``β = ½^{1/(h + 1)}``, then ``end``."""
    if t < warmup:
        a = t / float(warmup)
        return 0.5 ** (1 / ((1.0 - a) * half_life(start) + a * half_life(end) + 1))
    return end


class MixedAverage(FirstMoment):
    """AdEMAMix's first moment (Pagliardini, Ablin & Grangier, "The AdEMAMix Optimizer:
    Better, Faster, Older", 2024, Algorithm 1): a fast average, bias-corrected, plus α times
    a slow one, not corrected.

    .. math::
        m^{(1)}_t = β_1 m^{(1)}_{t−1} + (1 − β_1) g_t, \\qquad
        m^{(2)}_t = β_3(t)\\, m^{(2)}_{t−1} + (1 − β_3(t))\\, g_t,

        m_t = m^{(1)}_t / (1 − β_1^t) + α(t)\\, m^{(2)}_t

    (``betas`` = (β1, β2, β3)). With ``alpha_warmup`` T_α, α(t) rises linearly from 0
    (:func:`linear_warmup`); with ``beta3_warmup`` T_β3, β3(t) rises from β1, linearly in the
    half-life (:func:`half_life_warmup`). With β1 = 0 the fast average is ``g`` itself. State
    ``exp_avg_fast`` (kept when β1 ≠ 0) and ``exp_avg_slow``.
    """

    hyperparameters = {
        "betas": (0.9, 0.999, 0.9999),
        "alpha": 2.0,
        "beta3_warmup": None,
        "alpha_warmup": None,
    }
    state = (
        StateSpec("exp_avg_fast", exists=lambda g: g["betas"][0] != 0),
        StateSpec("exp_avg_slow"),
    )

    @staticmethod
    def coefficients(group: Mapping[str, Any], t: float) -> tuple[Any, Any]:
        """(α(t), β3(t)) at step ``t``."""
        beta1, _, beta3 = group["betas"]
        alpha, alpha_warmup, beta3_warmup = (
            group["alpha"],
            group["alpha_warmup"],
            group["beta3_warmup"],
        )
        if alpha_warmup is not None:
            alpha = linear_warmup(t, alpha, 0.0, alpha_warmup)
        if beta3_warmup is not None:
            beta3 = half_life_warmup(t, beta3, beta1, beta3_warmup)
        return alpha, beta3

    def direction(self, view: UpdateView, g: Any, denom: Any) -> Direction:
        beta1 = view.group["betas"][0]
        alpha, beta3 = self.coefficients(view.group, view.t)
        fast = ema_(view.state("exp_avg_fast"), g, beta1) if beta1 != 0 else g
        slow = ema_(view.state("exp_avg_slow"), g, beta3)
        return [Term(fast, 1.0, denom, divisor=1 - beta1**view.t), Term(slow, alpha, denom)]

    def formula(self, group: Mapping[str, Any]) -> str:
        fast = "m₁ ← β1·m₁ + (1−β1)·g   (exp_avg_fast)" if group["betas"][0] != 0 else "m₁ = g"
        warmups = [
            "α(t) linear from 0 over alpha_warmup steps" if group["alpha_warmup"] else "",
            "β3(t) from β1, linear in half-life over beta3_warmup steps"
            if group["beta3_warmup"]
            else "",
        ]
        line = f"{fast};  m₂ ← β3·m₂ + (1−β3)·g   (exp_avg_slow);  m = m₁/(1−β1^t) + α·m₂"
        return ";  ".join([line, *(w for w in warmups if w)])
