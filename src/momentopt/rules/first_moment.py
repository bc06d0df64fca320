"""Step 2, φ: first-moment rules. Each keeps ``m`` and returns the step's direction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .averages import ema_, ema_of_squares_
from .base import Direction, FirstMoment, Term
from .contract import Start, StateSpec, UpdateView


class NoFirstMoment(FirstMoment):
    """φ = g: the step follows the (preconditioned) gradient itself."""

    def direction(self, view: UpdateView, g: Any, denom: Any) -> Direction:
        return [Term(g, 1.0, denom)]

    def formula(self, group: Mapping[str, Any]) -> str:
        return "m = g"


class HeavyBall(FirstMoment):
    """Heavy-ball momentum (Polyak, 1964), as torch.optim's SGD runs it.

    .. math::
        b_1 = g_1, \\qquad b_t = μ b_{t−1} + (1 − \\text{dampening})\\, g_t, \\qquad
        m_t = b_t \\;\\text{or, with nesterov,}\\; m_t = g_t + μ b_t

    (Sutskever et al., "On the importance of initialization and momentum in deep learning",
    ICML 2013, for the Nesterov form). State ``momentum_buffer``, kept when μ ≠ 0. Applied
    before the denominator, if a recipe has one. With μ = 0 it is plain ``m = g``.
    """

    hyperparameters = {"momentum": 0.0, "dampening": 0.0, "nesterov": False}
    state = (StateSpec("momentum_buffer", Start.FIRST_VALUE, exists=lambda g: g["momentum"] != 0),)

    def direction(self, view: UpdateView, g: Any, denom: Any) -> Direction:
        momentum = view.group["momentum"]
        if momentum == 0:
            return [Term(g, 1.0, denom)]
        if view.has("momentum_buffer"):
            buf = view.state("momentum_buffer").mul_(momentum)
            buf = buf.add_(g, alpha=1 - view.group["dampening"])
        else:
            buf = view.start("momentum_buffer", g)
        m = g.add(buf, alpha=momentum) if view.group["nesterov"] else buf
        return [Term(m, 1.0, denom)]

    def formula(self, group: Mapping[str, Any]) -> str:
        if group["momentum"] == 0:
            return "m = g"
        line = "b ← μ·b + (1−dampening)·g   (momentum_buffer, b₁ = g)"
        return line + (";  m = g + μ·b   (Nesterov)" if group["nesterov"] else ";  m = b")


class ScaledMomentum(FirstMoment):
    """Momentum applied after the denominator, as torch.optim's RMSprop runs it.

    .. math::
        b_t = μ b_{t−1} + g_t / \\sqrt{V_t}, \\qquad m_t = b_t
        \\;\\text{or, with nesterov,}\\; m_t = g_t/\\sqrt{V_t} + μ b_t

    State ``momentum_buffer`` (starts at 0), kept when μ > 0 (Tieleman & Hinton, 2012,
    lecture 6.5, for RMSProp). With μ = 0: ``m = g/√V``.
    """

    hyperparameters = {"momentum": 0.0}
    state = (StateSpec("momentum_buffer", exists=lambda g: g["momentum"] > 0),)

    def __init__(self, nesterov: bool = False) -> None:
        self.nesterov = nesterov

    def direction(self, view: UpdateView, g: Any, denom: Any) -> Direction:
        momentum = view.group["momentum"]
        if momentum <= 0:
            return [Term(g, 1.0, denom)]
        buf = view.state("momentum_buffer").mul_(momentum)
        buf = buf.addcdiv_(g, denom) if denom is not None else buf.add_(g)
        if self.nesterov:
            return [Term(g, 1.0, denom), Term(buf, momentum)]
        return [Term(buf)]

    def formula(self, group: Mapping[str, Any]) -> str:
        if group["momentum"] <= 0:
            return "m = g/√V"
        line = "b ← μ·b + g/√V   (momentum_buffer)"
        return line + (";  m = g/√V + μ·b   (Nesterov)" if self.nesterov else ";  m = b")

    def __repr__(self) -> str:
        return f"ScaledMomentum(nesterov={self.nesterov})"


class BiasCorrectedAverage(FirstMoment):
    """Adam's first moment (Kingma & Ba, "Adam: A Method for Stochastic Optimization",
    ICLR 2015).

    .. math::
        m_t = β_1 m_{t−1} + (1 − β_1) g_t, \\qquad \\hat m_t = m_t / (1 − β_1^t)

    State ``exp_avg``.
    """

    hyperparameters = {"betas": (0.9, 0.999)}
    state = (StateSpec("exp_avg"),)

    def direction(self, view: UpdateView, g: Any, denom: Any) -> Direction:
        beta1, _ = view.group["betas"]
        m = ema_(view.state("exp_avg"), g, beta1)
        return [Term(m, 1.0, denom, divisor=1 - beta1**view.t)]

    def formula(self, group: Mapping[str, Any]) -> str:
        return "m ← β1·m + (1−β1)·g   (exp_avg);  m̂ = m/(1−β1^t)"


class NesterovAverage(FirstMoment):
    """NAdam's first moment (Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016
    workshop), with torch.optim's momentum schedule.

    .. math::
        μ_t = β_1 (1 − ½ · 0.96^{tψ}), \\qquad Π_t = \\prod_{i ≤ t} μ_i, \\qquad
        m_t = β_1 m_{t−1} + (1 − β_1) g_t,

        \\hat m_t = \\frac{1 − μ_t}{1 − Π_t} g_t + \\frac{μ_{t+1}}{1 − Π_t μ_{t+1}} m_t

    (ψ = ``momentum_decay``). State ``mu_product`` (a scalar, starts at 1) and ``exp_avg``.
    """

    hyperparameters = {"betas": (0.9, 0.999), "momentum_decay": 4e-3}
    state = (StateSpec("mu_product", Start.ONE, scalar=True), StateSpec("exp_avg"))

    def direction(self, view: UpdateView, g: Any, denom: Any) -> Direction:
        (beta1, _), psi, t = view.group["betas"], view.group["momentum_decay"], view.t
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * psi))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        mu_product = view.scale_scalar_("mu_product", mu)
        m = ema_(view.state("exp_avg"), g, beta1)
        return [
            Term(g, 1.0 - mu, denom, divisor=1.0 - mu_product),
            Term(m, mu_next, denom, divisor=1.0 - mu_product * mu_next),
        ]

    def formula(self, group: Mapping[str, Any]) -> str:
        return (
            "μ_t = β1·(1 − ½·0.96^(t·ψ));  Π ← Π·μ_t   (mu_product);  "
            "m ← β1·m + (1−β1)·g   (exp_avg);  "
            "m̂ = (1−μ_t)/(1−Π)·g + μ_{t+1}/(1−Π·μ_{t+1})·m"
        )


class DeltaScaledGradient(FirstMoment):
    """AdaDelta's first moment (Zeiler, "ADADELTA: An Adaptive Learning Rate Method", 2012).

    .. math::
        Δ_t = \\frac{\\sqrt{U_{t−1} + ε}}{\\sqrt{V_t}}\\, g_t, \\qquad
        U_t = ρ U_{t−1} + (1 − ρ) Δ_t^2

    State ``acc_delta``; the step is ``Δ`` itself (its denominator is already applied).
    """

    hyperparameters = {"rho": 0.9, "eps": 1e-6}
    state = (StateSpec("acc_delta", signed=False),)

    def direction(self, view: UpdateView, g: Any, denom: Any) -> Direction:
        acc_delta = view.state("acc_delta")
        delta = acc_delta.add(view.group["eps"]).sqrt_()
        if denom is not None:
            delta.div_(denom)
        delta.mul_(g)
        ema_of_squares_(acc_delta, delta, view.group["rho"])
        return [Term(delta)]

    def formula(self, group: Mapping[str, Any]) -> str:
        return "m = √(U + ε)·g, step m/√V;  U ← ρ·U + (1−ρ)·(m/√V)²   (acc_delta)"
