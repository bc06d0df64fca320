"""A second moment applied before the first, with the previous ``V`` (ADOPT: Taniguchi et al.,
"ADOPT: Modified Adam Can Converge with Any β2 with the Optimal Rate", NeurIPS 2024).

Adam divides the momentum of ``g`` by a ``√V`` that already holds ``g``; ADOPT normalises
each gradient by the ``V`` of the steps before it, then averages the normalised gradients, so
the step no longer correlates with the current gradient. Its first step only sets ``V₀ = g²``
(the paper's step 0) and moves nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .averages import ema_
from .base import Direction, FirstMoment, GradientRule, SecondMoment, Term
from .contract import StateSpec, UpdateView


class PreviousSquaredAverage(SecondMoment):
    """ADOPT's second moment (Taniguchi et al., 2024, Algorithm 2): the denominator of step
    ``t`` is made from ``V_{t−1}``, and ``V`` takes ``g_t`` only afterwards.

    .. math::
        V_0 = g_0^2; \\qquad \\text{denominator } \\max(\\sqrt{V_{t−1}}, ε), \\quad
        V_t = β_2 V_{t−1} + (1 − β_2) g_t^2

    At the first step (the paper's step 0) it only sets ``V₀`` and gives no denominator; the
    first moment then makes no step (:class:`NormalizedAverage`). State ``exp_avg_sq``.
    """

    hyperparameters = {"betas": (0.9, 0.9999), "eps": 1e-6}
    state = (StateSpec("exp_avg_sq", signed=False),)

    def denominator(self, view: UpdateView, g: Any) -> Any:
        exp_avg_sq = view.state("exp_avg_sq")
        if view.t == 1:
            exp_avg_sq.addcmul_(g, g)
            return None
        denom = exp_avg_sq.sqrt().clamp_min_(view.group["eps"])
        beta2 = view.group["betas"][1]
        exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        return denom

    def formula(self, group: Mapping[str, Any]) -> str:
        return "t = 1: V ← g²;  then max(√V, ε), and V ← β2·V + (1−β2)·g²   (exp_avg_sq)"


class NormalizedAverage(FirstMoment):
    """ADOPT's first moment (Taniguchi et al., 2024, Algorithm 2 with its clipping, section
    4): the average of the gradients normalised by the previous second moment, each clipped
    to ``±c(t − 1)``.

    .. math::
        m_t = β_1 m_{t−1} + (1 − β_1) \\operatorname{clip}\\big(g_t / \\max(\\sqrt{V_{t−1}}, ε),
        \\; c(t − 1)\\big)

    ``c`` is the group's ``clip_lambda`` (a function of the step count before this step,
    ``c(s) = s^{1/4}`` by default; None: no clipping). No step at the first step, where the
    second moment only starts (:class:`PreviousSquaredAverage`). State ``exp_avg``.
    """

    hyperparameters = {"betas": (0.9, 0.9999), "clip_lambda": None}
    state = (StateSpec("exp_avg"),)

    def direction(self, view: UpdateView, g: Any, denom: Any) -> Direction:
        if view.t == 1:
            return []
        normed = g.div(denom)
        clip_lambda = view.group["clip_lambda"]
        if clip_lambda is not None:
            clip = clip_lambda(view.t - 1)
            normed.clamp_(-clip, clip)
        return [Term(ema_(view.state("exp_avg"), normed, view.group["betas"][0]))]

    def formula(self, group: Mapping[str, Any]) -> str:
        clip = "clip(g/√V, c(t−1))" if group.get("clip_lambda") is not None else "g/√V"
        return f"t = 1: no step;  then m ← β1·m + (1−β1)·{clip}   (exp_avg);  m"


class DecayFromFirstUpdate(GradientRule):
    """ADOPT's weight decay (its reference implementation, torch-adopt): coupled, ``g ← g + λw``
    at every step (the first one's ``g`` sets ``V₀``), or with ``decouple``

    .. math::
        w ← w + (−α λ)\\, w

    from the second step on, the first that moves the weights (Loshchilov & Hutter, "Decoupled
    Weight Decay Regularization", ICLR 2019)."""

    hyperparameters = {"weight_decay": 0.0, "decouple": False}

    def densifies_sparse(self, group: Mapping[str, Any]) -> bool:
        return group["weight_decay"] != 0 and not group["decouple"]

    def apply(self, view: UpdateView, g: Any) -> Any:
        decay = view.group["weight_decay"]
        if decay == 0:
            return g
        if not view.group["decouple"]:
            return g.add(view.param, alpha=decay)
        if view.t != 1:
            view.param.add_(view.param, alpha=-view.group["lr"] * decay)
        return g

    def formula(self, group: Mapping[str, Any]) -> str:
        if group["weight_decay"] == 0:
            return ""
        if group["decouple"]:
            return f"t > 1: w ← w − α·λ·w   (decoupled decay, λ={group['weight_decay']})"
        return f"g ← g + λ·w   (coupled L2 decay, λ={group['weight_decay']})"
