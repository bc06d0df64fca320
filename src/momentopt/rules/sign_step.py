"""Sign-based steps with a step size per element: the direction is the gradient's sign, and
each element keeps its own step size, grown or shrunk by whether the gradient's sign held."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Direction, FirstMoment, LrSchedule, Term
from .contract import Scalar, Start, StateSpec, UpdateView


class ResilientStep(FirstMoment):
    """Rprop's step (Riedmiller & Braun, "A Direct Adaptive Method for Faster Backpropagation
    Learning: The RPROP Algorithm", ICNN 1993), as torch.optim's Rprop takes it.

    .. math::
        s = \\operatorname{sign}(g_t \\, g_{t−1}), \\qquad
        Δ_t = \\operatorname{clamp}\\big(Δ_{t−1} \\cdot \\{η_+ \\text{ if } s > 0;\\;
        η_- \\text{ if } s < 0;\\; 1 \\text{ otherwise}\\},\\; Δ_{min},\\; Δ_{max}\\big),

        g_t ← 0 \\text{ where the sign flipped}, \\qquad m_t = \\operatorname{sign}(g_t) \\, Δ_t

    (``etas`` = (η₋, η₊), ``step_sizes`` = (Δ_min, Δ_max)). Where the sign flipped, the step
    is skipped and the next step compares with 0, so that Δ shrinks once per flip. State
    ``prev`` (the last gradient, 0 where its sign flipped) and ``step_size`` (Δ, starting at
    the group's ``lr``). The step sizes are the step: with :class:`UnitStepSize` as the
    schedule, the update is ``w ← w − m``.
    """

    hyperparameters = {"etas": (0.5, 1.2), "step_sizes": (1e-6, 50)}
    state = (StateSpec("prev"), StateSpec("step_size", Start.FILL, value="lr", signed=False))

    def direction(self, view: UpdateView, g: Any, denom: Any) -> Direction:
        etaminus, etaplus = view.group["etas"]
        smallest, largest = view.group["step_sizes"]
        prev, step_size = view.state("prev"), view.state("step_size")
        factor = g.mul(prev).sign()  # then η₊, η₋ or 1, in this order
        factor.masked_fill_(factor.gt(0), etaplus)
        factor.masked_fill_(factor.lt(0), etaminus)
        factor.masked_fill_(factor.eq(0), 1)
        step_size.mul_(factor).clamp_(smallest, largest)
        g = g.clone().masked_fill_(factor.eq(etaminus), 0)  # the sign flipped: no step
        prev.copy_(g)
        return [Term(g.sign().mul(step_size), 1.0, denom)]

    def formula(self, group: Mapping[str, Any]) -> str:
        return (
            "s = sign(g·g_prev);  Δ ← clamp(Δ·(η₊ if s > 0, η₋ if s < 0, else 1), Δmin, Δmax)"
            "   (step_size, Δ₁ = α);  g ← 0 where s < 0;  g_prev ← g   (prev);  m = sign(g)·Δ"
        )


class UnitStepSize(LrSchedule):
    """``α_t = 1``: the first moment holds the step sizes (:class:`ResilientStep`'s Δ, which
    the group's ``lr`` only starts), so the update is the direction itself."""

    def lr(self, view: UpdateView, lr: Scalar) -> Scalar:
        return 1.0

    def formula(self, group: Mapping[str, Any]) -> str:
        return "α_t = 1   (the step sizes are in m; α only starts them)"
