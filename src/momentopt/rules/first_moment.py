"""Step 2, φ: first-moment rules. Each keeps ``m`` and returns the step's direction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..engine.bundle import Bundle
from ..engine.tensorlist import Tensors
from .averages import ema_, ema_of_squares_
from .base import Direction, FirstMoment, Term


class Gradient(FirstMoment):
    """φ = g: the step follows the (preconditioned) gradient itself."""

    def direction(self, b: Bundle, g: Tensors, denom: Tensors | None) -> Direction:
        return [Term(g, 1.0, denom)]

    def formula(self, group: Mapping[str, Any]) -> str:
        return "m = g"


class HeavyBall(FirstMoment):
    """SGD momentum: ``b ← μ·b + (1−dampening)·g``, starting as ``b = g`` (``momentum_buffer``).

    ``m = b``, or ``m = g + μ·b`` with ``nesterov`` (Sutskever's form). Applied before the
    denominator, if a recipe has one. With ``momentum = 0`` it is plain ``m = g``.
    """

    hyperparameters = {"momentum": 0.0, "dampening": 0.0, "nesterov": False}

    def lazy_state(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    def direction(self, b: Bundle, g: Tensors, denom: Tensors | None) -> Direction:
        momentum = b.hp["momentum"]
        if momentum == 0:
            return [Term(g, 1.0, denom)]
        if b.has("momentum_buffer"):
            buf = b.state("momentum_buffer").mul_(momentum).add_(g, alpha=1 - b.hp["dampening"])
        else:
            buf = g.detach().clone()
            b.store("momentum_buffer", buf)
        m = g.add(buf, alpha=momentum) if b.hp["nesterov"] else buf
        return [Term(m, 1.0, denom)]

    def formula(self, group: Mapping[str, Any]) -> str:
        if group["momentum"] == 0:
            return "m = g"
        line = "b ← μ·b + (1−dampening)·g   (momentum_buffer, b₁ = g)"
        return line + (";  m = g + μ·b   (Nesterov)" if group["nesterov"] else ";  m = b")


class ScaledMomentum(FirstMoment):
    """RMSProp momentum, applied after the denominator: ``b ← μ·b + g/√V`` (``momentum_buffer``,
    starts at 0), ``m = b``; with ``nesterov`` (not in torch's RMSprop), ``m = g/√V + μ·b``.
    With ``momentum = 0``: ``m = g/√V``.
    """

    hyperparameters = {"momentum": 0.0}

    def __init__(self, nesterov: bool = False) -> None:
        self.nesterov = nesterov

    def init_state(
        self, param: Tensor, group: Mapping[str, Any], state: dict[str, Any], defaults: Mapping[str, Any]
    ) -> None:
        if group["momentum"] > 0:
            state["momentum_buffer"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def direction(self, b: Bundle, g: Tensors, denom: Tensors | None) -> Direction:
        momentum = b.hp["momentum"]
        if momentum <= 0:
            return [Term(g, 1.0, denom)]
        buf = b.state("momentum_buffer").mul_(momentum)
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
    """Adam: ``m ← β1·m + (1−β1)·g`` (``exp_avg``), step ``m/(1−β1^t)``."""

    hyperparameters = {"betas": (0.9, 0.999)}

    def init_state(
        self, param: Tensor, group: Mapping[str, Any], state: dict[str, Any], defaults: Mapping[str, Any]
    ) -> None:
        state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def direction(self, b: Bundle, g: Tensors, denom: Tensors | None) -> Direction:
        beta1, _ = b.hp["betas"]
        m = ema_(b.state("exp_avg"), g, beta1)
        if b.differentiable:
            m = m.clone()
        return [Term(m, 1 / (1 - beta1**b.step), denom)]

    def formula(self, group: Mapping[str, Any]) -> str:
        return "m ← β1·m + (1−β1)·g   (exp_avg);  m̂ = m/(1−β1^t)"


class NesterovAverage(FirstMoment):
    """NAdam: ``m ← β1·m + (1−β1)·g`` with the momentum schedule
    ``μ_t = β1·(1 − ½·0.96^(t·ψ))`` (ψ = ``momentum_decay``) and ``Π_t = Π μ_i``
    (``mu_product``); step ``(1−μ_t)/(1−Π_t)·g + μ_{t+1}/(1−Π_t·μ_{t+1})·m``.
    """

    hyperparameters = {"betas": (0.9, 0.999), "momentum_decay": 4e-3}
    scalar_state = ("mu_product",)

    def init_state(
        self, param: Tensor, group: Mapping[str, Any], state: dict[str, Any], defaults: Mapping[str, Any]
    ) -> None:
        state["mu_product"] = torch.ones((), dtype=state["step"].dtype, device=state["step"].device)
        state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def direction(self, b: Bundle, g: Tensors, denom: Tensors | None) -> Direction:
        (beta1, _), psi, t = b.hp["betas"], b.hp["momentum_decay"], b.step
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * psi))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        if b.differentiable:
            return self._recorded_direction(b, g, denom, mu, mu_next)
        mu_product = b.scale_scalar_("mu_product", mu)
        m = ema_(b.state("exp_avg"), g, beta1)
        return [
            Term(g, (1.0 - mu) / (1.0 - mu_product), denom),
            Term(m, mu_next / (1.0 - mu_product * mu_next), denom),
        ]

    @staticmethod
    def _recorded_direction(b: Bundle, g: Tensors, denom: Tensors | None, mu: Any,
                            mu_next: Any) -> Direction:
        """``differentiable=True`` (one tensor per bundle): ``Π ← Π·μ_t`` in place on the state
        tensor, as torch does, so autograd carries gradients to ``mu_product``. The
        coefficients are computed in float64 from the stored ``Π`` — the very numbers the
        other executors compute from ``Π.item()`` — so the step's values equal the normal
        step's (torch's differentiable step computes them in ``Π``'s float32 and differs
        from its own normal step by that rounding)."""
        mu_product = b.state("mu_product")
        mu_product.mul_(mu)
        wide = mu_product.to(torch.float64)
        m = ema_(b.state("exp_avg"), g, b.hp["betas"][0]).clone()
        return [
            Term(g, (1.0 - mu) / (1.0 - wide), denom),
            Term(m, mu_next / (1.0 - wide * mu_next), denom),
        ]

    def formula(self, group: Mapping[str, Any]) -> str:
        return (
            "μ_t = β1·(1 − ½·0.96^(t·ψ));  Π ← Π·μ_t   (mu_product);  "
            "m ← β1·m + (1−β1)·g   (exp_avg);  "
            "m̂ = (1−μ_t)/(1−Π)·g + μ_{t+1}/(1−Π·μ_{t+1})·m"
        )


class DeltaScaledGradient(FirstMoment):
    """AdaDelta: ``Δ = √(U + ε)/√V · g``, then ``U ← ρ·U + (1−ρ)·Δ²`` (``acc_delta``)."""

    hyperparameters = {"rho": 0.9, "eps": 1e-6}

    def init_state(
        self, param: Tensor, group: Mapping[str, Any], state: dict[str, Any], defaults: Mapping[str, Any]
    ) -> None:
        state["acc_delta"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def direction(self, b: Bundle, g: Tensors, denom: Tensors | None) -> Direction:
        acc_delta = b.state("acc_delta")
        delta = acc_delta.add(b.hp["eps"]).sqrt_()
        if b.differentiable:
            delta = delta.clone()
        if denom is not None:
            delta.div_(denom)
        delta.mul_(g)
        ema_of_squares_(acc_delta, delta, b.hp["rho"])
        return [Term(delta)]

    def formula(self, group: Mapping[str, Any]) -> str:
        return "m = √(U + ε)·g, step m/√V;  U ← ρ·U + (1−ρ)·(m/√V)²   (acc_delta)"
