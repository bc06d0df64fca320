"""Rules for matrices as a whole: Muon's momentum orthogonalised by a Newton–Schulz iteration
and its learning rate adjusted to the matrix's shape (Jordan et al., "Muon: An optimizer for
hidden layers in neural networks", 2024; Liu et al., "Muon is Scalable for LLM Training",
2025).

The orthogonalisation is a function of matrices (:func:`~.contract.matrix_function`) that
the engine applies to each 2-D tensor — to same-shape matrices together, as one batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from .averages import ema_
from .base import Direction, FirstMoment, LrSchedule, Term
from .contract import Scalar, StateSpec, UpdateView, each, matrix_function

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
"""Keller Jordan's quintic Newton–Schulz coefficients ``(a, b, c)``."""


class AveragedMomentum(FirstMoment):
    """Momentum as an exponential moving average of the gradient, without bias correction.

    .. math::
        b_t = μ b_{t−1} + (1 − μ) g_t \\;(b_0 = 0), \\qquad
        m_t = b_t \\;\\text{or, with nesterov,}\\; m_t = (1 − μ) g_t + μ b_t

    (torch's Muon; its docstring writes ``b_t = μ b_{t−1} + g_t``, its code averages). State
    ``momentum_buffer``.
    """

    hyperparameters = {"momentum": 0.95, "nesterov": True}
    state = (StateSpec("momentum_buffer"),)

    def direction(self, view: UpdateView, g: Any, denom: Any) -> Direction:
        momentum = view.group["momentum"]
        buf = ema_(view.state("momentum_buffer"), g, momentum)
        m = g.lerp(buf, momentum) if view.group["nesterov"] else buf
        return [Term(m, 1.0, denom)]

    def formula(self, group: Mapping[str, Any]) -> str:
        line = "b ← μ·b + (1−μ)·g   (momentum_buffer)"
        return line + (";  m = (1−μ)·g + μ·b   (Nesterov)" if group["nesterov"] else ";  m = b")


def newton_schulz(
    coefficients: Sequence[float], steps: int, eps: float
) -> Callable[[Tensor], Tensor]:
    """The quintic Newton–Schulz iteration towards the orthogonal factor ``UVᵀ`` of ``X = USVᵀ``,
    in bfloat16, as a :func:`~.contract.matrix_function`.

    .. math::
        X_0 = X / \\max(‖X‖_F, ε), \\qquad
        X_{k+1} = a X_k + (b A_k + c A_k^2) X_k, \\quad A_k = X_k X_k^⊤

    on the wide orientation (a tall matrix is transposed before and after). It gives
    ``US'Vᵀ`` with ``S'`` near 1 rather than ``UVᵀ`` exactly (Jordan et al.).
    """
    a, b, c = coefficients

    @matrix_function
    def orthogonalize(x: Tensor) -> Tensor:
        addmm = torch.addmm if x.dim() == 2 else torch.baddbmm  # β·x + α·a@b, one rounding
        tall = x.size(-2) > x.size(-1)
        o = x.bfloat16()
        if tall:
            o = o.mT
        o.div_(torch.linalg.vector_norm(o, dim=(-2, -1), keepdim=True).clamp(min=eps))
        for _ in range(steps):
            gram = o @ o.mT
            o = addmm(o, addmm(gram, gram, gram, beta=b, alpha=c), o, beta=a)
        return o.mT if tall else o

    return orthogonalize


def _sum(direction: Direction) -> Any:
    """``Σ coef/divisor · tensor/denom`` as one tensor (the tensor itself for a plain term)."""
    total = None
    for term in direction:
        x = term.tensor if term.denom is None else term.tensor.div(term.denom)
        scale = term.coef / term.divisor
        if total is None:
            total = x if isinstance(scale, float) and scale == 1.0 else x.mul(scale)
        else:
            total.add_(x, alpha=scale)
    return total


class Orthogonalized(FirstMoment):
    """A first moment orthogonalised: the inner rule's direction ``m`` (a matrix) replaced by
    the Newton–Schulz approximation of its orthogonal factor.

    .. math::
        O_t = \\mathrm{NS}^{(a,b,c)}_k(m_t;\\, ε)

    (``ns_coefficients`` = (a, b, c), ``ns_steps`` = k, ``eps``; :func:`newton_schulz`). For
    2-D parameters. The state is the inner rule's.
    """

    def __init__(self, first: FirstMoment) -> None:
        self.first = first
        self.state = first.state
        self.hyperparameters = {
            **first.hyperparameters,
            "ns_coefficients": NS_COEFFICIENTS,
            "ns_steps": 5,
            "eps": 1e-7,
        }

    def direction(self, view: UpdateView, g: Any, denom: Any) -> Direction:
        group = view.group
        m = _sum(self.first.direction(view, g, denom))
        ns = newton_schulz(group["ns_coefficients"], group["ns_steps"], group["eps"])
        return [Term(view.map_matrices(ns, m))]

    def formula(self, group: Mapping[str, Any]) -> str:
        return (
            self.first.formula(group)
            + f";  m ← NS(m), {group['ns_steps']} Newton–Schulz steps in bfloat16"
        )

    def __repr__(self) -> str:
        return f"Orthogonalized({self.first!r})"


def _shape_ratio(adjust_lr_fn: str | None, rows: int, cols: int) -> float:
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return math.sqrt(max(1, rows / cols))
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return 1.0  # torch's Muon for a value set after construction


class ShapeAdjustedLr(LrSchedule):
    """Muon's learning rate for an ``A × B`` matrix, so that orthogonalised updates of any
    shape have a comparable RMS.

    .. math::
        α_t = α \\sqrt{\\max(1, A/B)} \\;\\text{("original", Jordan)} \\quad\\text{or}\\quad
        α_t = 0.2\\, α \\sqrt{\\max(A, B)} \\;\\text{("match_rms_adamw", Liu et al.)}

    (``adjust_lr_fn``; None is "original"). Decoupled weight decay keeps the unadjusted ``α``.
    """

    hyperparameters = {"adjust_lr_fn": None}

    def lr(self, view: UpdateView, lr: Scalar) -> Scalar:
        w, fn = view.param, view.group["adjust_lr_fn"]
        return lr * each(lambda rows, cols: _shape_ratio(fn, rows, cols), w.size(0), w.size(1))

    def formula(self, group: Mapping[str, Any]) -> str:
        if group["adjust_lr_fn"] == "match_rms_adamw":
            return "α_t = 0.2·α·√max(A, B)   (A × B matrix)"
        return "α_t = α·√max(1, A/B)   (A × B matrix)"
