"""Rules that look at each tensor as a whole: Adafactor's factored second moment, its update
clipping and its relative step size (Shazeer & Stern, "Adafactor: Adaptive Learning Rates with
Sublinear Memory Cost", ICML 2018).

They use the tensorwise ops of the contract (norms of each tensor or along its dimensions,
means along dimensions, a matrix product, per-tensor numbers), so they run one tensor at a
time and multi-tensor, not compiled.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .base import Direction, FirstMoment, LrSchedule, SecondMoment, Term
from .contract import Scalar, StateSpec, UpdateView, each


def _factored(shape: tuple[int, ...]) -> bool:
    """Parameters of two or more dimensions keep factors over their last two."""
    return len(shape) > 1


def _row_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (*shape[:-1], 1)


def _column_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (*shape[:-2], 1, shape[-1])


def _mean_of_squares(g: Any, dim: int) -> Any:
    """The mean of ``g²`` along ``dim`` (kept), as ``‖g‖²/n`` along it (no tensor of ``g``'s
    size in between)."""
    norm = g.norm(dim=dim, keepdim=True)
    return norm.mul_(norm).div_(g.size(dim))


class FactoredSquaredAverage(SecondMoment):
    """Adafactor's second moment: for a matrix (the last two dimensions of a parameter of two
    or more), the running averages of ``g²``'s row and column means instead of ``g²`` itself.

    .. math::
        \\hat β_{2,t} = 1 − t^{τ}, \\qquad
        R_t = \\hat β_{2,t} R_{t−1} + (1 − \\hat β_{2,t})\\, \\mathrm{mean}_{cols}(g_t^2), \\qquad
        C_t = \\hat β_{2,t} C_{t−1} + (1 − \\hat β_{2,t})\\, \\mathrm{mean}_{rows}(g_t^2),

        \\hat V_t = \\frac{R_t C_t}{\\max(\\mathrm{mean}(R_t), ε_1)}
        \\;\\text{(a vector: } \\hat V_t = \\hat β_{2,t} \\hat V_{t−1} + (1 − \\hat β_{2,t}) g_t^2),
        \\qquad \\text{denominator } \\max(\\sqrt{\\hat V_t}, ε_1)

    (τ = ``beta2_decay`` ≤ 0, ε₁ = ``eps[0]``, the dtype's machine epsilon when None). State
    ``row_var`` and ``col_var`` (shaped like the parameter with the last, respectively the
    second-to-last, dimension 1) for parameters of two or more dimensions; ``variance`` for
    the others. Memory: ``m + n`` numbers per ``m × n`` matrix.
    """

    hyperparameters = {"beta2_decay": -0.8, "eps": (None, 1e-3)}
    state = (
        StateSpec("row_var", signed=False, shape=_row_shape, kept_for=_factored),
        StateSpec("col_var", signed=False, shape=_column_shape, kept_for=_factored),
        StateSpec("variance", signed=False, kept_for=lambda shape: not _factored(shape)),
    )

    def denominator(self, view: UpdateView, g: Any) -> Any:
        weight = view.t ** view.group["beta2_decay"]  # 1 − β̂₂
        if view.has("row_var"):
            row_var = view.state("row_var").lerp_(_mean_of_squares(g, -1), weight)
            col_var = view.state("col_var").lerp_(_mean_of_squares(g, -2), weight)
            eps1 = _eps1(view, g)
            v = row_var @ col_var
            v.div_(row_var.mean(dim=-2, keepdim=True).clamp_min_(eps1))
        else:
            v = view.state("variance").lerp_(g.mul(g), weight).clone()
            eps1 = _eps1(view, g)
        return v.clamp_min_(eps1 * eps1).sqrt_()  # max(√V̂, ε1)

    def formula(self, group: Mapping[str, Any]) -> str:
        return (
            "β̂₂ = 1 − t^τ;  matrices: R ← β̂₂·R + (1−β̂₂)·mean_cols(g²)   (row_var), "
            "C ← β̂₂·C + (1−β̂₂)·mean_rows(g²)   (col_var), V̂ = R·C/max(mean(R), ε1);  "
            "vectors: V̂ ← β̂₂·V̂ + (1−β̂₂)·g²   (variance);  max(√V̂, ε1)"
        )


def _eps1(view: UpdateView, g: Any) -> Any:
    """ε₁, or the machine epsilon of ``g``'s dtype when the group's is None."""
    eps1 = view.group["eps"][0]
    return torch.finfo(g.dtype).eps if eps1 is None else eps1


def _rms(x: Any) -> Any:
    """The root mean square of each tensor, as a number: ``‖x‖ / √n``."""
    return x.norm(2).item() / (x.numel() ** 0.5)


class RmsClipped(FirstMoment):
    """Adafactor's update clipping, without momentum: the step is ``u = g/√V̂``, scaled down
    where its root mean square exceeds ``d``.

    .. math::
        u_t = g_t / \\sqrt{\\hat V_t}, \\qquad
        m_t = u_t / \\max\\!\\left(1, \\frac{\\mathrm{RMS}(u_t)}{d}\\right)

    (``RMS(u) = ‖u‖/√n`` over each tensor). No state.

    Args:
        into_denominator: the recipe's ψ returns a tensor of the step's own (not a state, as
            :class:`FactoredSquaredAverage`'s ``max(√V̂, ε₁)``): ``u = (1/√V̂)·g`` is written
            into it, as torch's Adafactor does, rather than into a new tensor of the
            parameter's size.
    """

    hyperparameters = {"d": 1.0}

    def __init__(self, into_denominator: bool = False) -> None:
        self.into_denominator = into_denominator

    def direction(self, view: UpdateView, g: Any, denom: Any) -> Direction:
        if denom is None:
            u = g
        else:
            u = denom.reciprocal_().mul_(g) if self.into_denominator else g.div(denom)
        ratio = u.norm(2).item() / ((u.numel() ** 0.5) * view.group["d"])
        return [Term(u, 1.0, divisor=each(max, 1.0, ratio))]

    def formula(self, group: Mapping[str, Any]) -> str:
        return "m = u / max(1, RMS(u)/d), u = g/√V   (update clipping; m holds the 1/√V)"

    def __repr__(self) -> str:
        return f"RmsClipped(into_denominator={self.into_denominator})"


class RelativeStepSize(LrSchedule):
    """Adafactor's step size: relative to the weights' scale, and at most ``1/√t``.

    .. math::
        ρ_t = \\min(α, 1/\\sqrt{t}), \\qquad α_t = \\max(ε_2, \\mathrm{RMS}(w_{t−1}))\\, ρ_t

    (ε₂ = ``eps[1]``; ``RMS(w)`` of each tensor as the step finds it, before weight decay).
    """

    hyperparameters = {"eps": (None, 1e-3)}

    def lr(self, view: UpdateView, lr: Scalar) -> Scalar:
        rho = min(lr, 1 / (view.t**0.5))
        return each(max, view.group["eps"][1], _rms(view.param)) * rho

    def formula(self, group: Mapping[str, Any]) -> str:
        return "α_t = max(ε2, RMS(w))·min(α, 1/√t)"
