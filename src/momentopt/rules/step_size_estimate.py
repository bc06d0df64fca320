"""A step size estimated from the whole model: Prodigy's ``d`` (Mishchenko & Defazio, "Prodigy:
An Expeditiously Adaptive Parameter-Free Learner", ICML 2024), a scalar every param group shares,
re-estimated before each step from sums over all parameters (:class:`~.base.ReducedScalar`).

Prodigy is Adam whose moments and step are scaled by ``d``, a lower bound on the distance to
the solution, ``d ≥ ⟨g, x₀ − x⟩ / ‖s‖₁`` with ``s`` a weighted sum of the gradients:

.. math::
    r_k = β_3 r_{k−1} + \\tfrac{d_k}{d_0} γ_k ⟨g_k, x_0 − x_k⟩, \\qquad
    s_k = β_3 s_{k−1} + \\tfrac{d_k}{d_0} γ_k g_k, \\qquad
    \\hat d_{k+1} = c\\, r_k / ‖s_k‖_1,

    d_{k+1} = \\min\\big(\\max(d_k, \\hat d_{k+1}, \\ldots),\\; d_k \\cdot \\text{growth}\\big)

(γ_k = d_k·lr·bias correction, c = ``d_coef``). As prodigyopt does, the group keeps ``d``,
``d_max``, ``d_numerator`` (r), ``k``, and after a step ``d_denom`` and ``d_hat``; every value
shared by all groups is read from the first one.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from math import inf, sqrt
from typing import Any

from .base import (
    Direction,
    FirstMoment,
    GradientRule,
    LrSchedule,
    ReducedScalar,
    SecondMoment,
    Term,
)
from .contract import Scalar, Start, StateSpec, UpdateView


def _slice_p(group: Mapping[str, Any]) -> int:
    """Every how many entries of the flattened parameter Prodigy keeps its statistics."""
    return int(group["slice_p"])


class ProdigyEstimate(ReducedScalar):
    """Prodigy's estimate of ``d`` (Mishchenko & Defazio, 2024, Algorithm 4, with prodigyopt's
    ``d_coef``, ``growth_rate``, ``safeguard_warmup`` and bias correction).

    Shared values of a step, from the first group: ``betas``, ``beta3`` (``√β2`` if None),
    ``decouple``,
    ``d`` (as ``d_step``), ``dlr`` = ``d·lr·(√(1−β2^{k+1})/(1−β1^{k+1}) or 1)`` with lr the
    groups' largest. Each parameter with a gradient ``g`` (``−g`` to maximize, ``+λw`` with
    coupled decay) in a group whose lr is not 0 adds ``(d/d₀)·dlr·⟨g, p₀ − w⟩`` to the
    numerator and ``‖s‖₁`` to the denominator, after ``s ← β3·s + (d/d₀)·dlr·g`` (``(d/d₀)·d``
    with ``safeguard_warmup``). Then ``d̂ = d_coef·r/‖s‖₁``; if ``d = d₀``, ``d ← max(d, d̂)``;
    ``d_max ← max(d_max, d̂)``; ``d ← min(d_max, d·growth_rate)``. No step while every ``s`` is
    0 (on one process). State ``s`` and ``p0`` (the parameter at its first step), flat.

    With ``slice_p`` = k > 1 the statistics are kept on every k-th entry of the flattened
    parameter only (``g``, ``w``, ``p₀`` and ``s`` of those entries: ``s`` and ``p₀`` have
    ``⌈n/k⌉`` entries), an approximation of ``d`` that saves memory (prodigyopt's option).
    """

    hyperparameters = {
        "betas": (0.9, 0.999),
        "beta3": None,
        "weight_decay": 0.0,
        "d": 1e-6,
        "d0": 1e-6,
        "d_max": 1e-6,
        "d_numerator": 0.0,
        "d_coef": 1.0,
        "k": 0,
        "growth_rate": inf,
        "use_bias_correction": False,
        "decouple": True,
        "safeguard_warmup": False,
        "fsdp_in_use": False,
        "slice_p": 1,
        "maximize": False,
    }
    state = (StateSpec("s", every=_slice_p), StateSpec("p0", Start.PARAM, every=_slice_p))
    sums = 2

    def begin(self, groups: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        first = groups[0]
        beta1, beta2 = first["betas"]
        beta3 = first["beta3"] if first["beta3"] is not None else sqrt(beta2)
        lr = max(group["lr"] for group in groups)
        for group in groups:
            if group["lr"] not in [lr, 0.0]:
                raise RuntimeError(
                    "Setting different lr values in different parameter groups is only "
                    "supported for values of 0"
                )
        k, d = first["k"], first["d"]
        correction = 1
        if first["use_bias_correction"]:
            correction = ((1 - beta2 ** (k + 1)) ** 0.5) / (1 - beta1 ** (k + 1))
        return {
            "betas": (beta1, beta2),
            "beta3": beta3,
            "decouple": first["decouple"],
            "d_step": d,
            "dlr": d * lr * correction,
            "lr_max": lr,
            "d_numerator_decayed": first["d_numerator"] * beta3,
        }

    def contribute(self, view: UpdateView) -> tuple[Any, ...]:
        group = view.group
        if not group["lr"] > 0.0:
            return 0.0, 0.0
        # −g to maximize is taken as the sign of g's terms (exact), so that the dot product
        # reads the gradient in its own memory layout, as prodigyopt's does (BLAS rounds a
        # strided vector's dot product otherwise than a contiguous one's)
        coupled = group["weight_decay"] != 0 and not group["decouple"]
        g = prodigy_gradient(view) if coupled else view.grad
        sign = -1.0 if group["maximize"] and not coupled else 1.0
        d, d0, dlr, k = group["d_step"], group["d0"], group["dlr"], _slice_p(group)
        sliced_g = g.flatten()[::k]
        p0 = view.state("p0")
        numerator = (d / d0) * dlr * (sliced_g @ p0.add(view.param.flatten()[::k], alpha=-1)).item()
        scale = (d / d0) * d if group["safeguard_warmup"] else (d / d0) * dlr
        s = view.state("s").mul_(group["beta3"]).add_(sliced_g, alpha=sign * scale)
        return (-numerator if sign < 0 else numerator), s.abs().sum().item()

    def skipped(self, view: UpdateView) -> None:
        """No step (every ``s`` is 0): prodigyopt has already updated the moments of each
        parameter with a gradient (lr not 0) in its first loop, and keeps them so."""
        if view.group["lr"] > 0.0:
            g = prodigy_gradient(view)
            scaled_average_(view, g)
            scaled_squared_average_(view, g)

    def sharded(self, groups: Sequence[Mapping[str, Any]]) -> bool:
        return bool(groups[0]["fsdp_in_use"]) or any(
            hasattr(p, "_fsdp_flattened") for group in groups for p in group["params"]
        )

    def finish(
        self,
        groups: Sequence[MutableMapping[str, Any]],
        sums: Sequence[float],
        shared: Mapping[str, Any],
    ) -> dict[str, Any] | None:
        first = groups[0]
        numerator, denominator = shared["d_numerator_decayed"] + sums[0], sums[1]
        if denominator == 0 and not self.sharded(groups):
            return None  # no progress (no gradient yet): no step
        d = d_hat = first["d"]
        d_max = first["d_max"]
        if shared["lr_max"] > 0.0:
            d_hat = first["d_coef"] * numerator / denominator
            if d == groups[-1]["d0"]:
                d = max(d, d_hat)
            d_max = max(d_max, d_hat)
            d = min(d_max, d * first["growth_rate"])
        for group in groups:
            group["d_numerator"], group["d_denom"] = numerator, denominator
            group["d"], group["d_max"], group["d_hat"] = d, d_max, d_hat
            group["k"] += 1
        return dict(shared)

    def formula(self, group: Mapping[str, Any]) -> str:
        return (
            "s ← β3·s + (d/d₀)·dlr·g   (s);  r ← β3·r + (d/d₀)·dlr·⟨g, p₀ − w⟩   (d_numerator);  "
            "d ← min(max(d, d_coef·r/‖s‖₁), d·growth_rate), over all parameters"
        )


def prodigy_gradient(view: UpdateView) -> Any:
    """The gradient Prodigy's moments and estimate see: ``−g`` to maximize, ``+λw`` with
    coupled decay (``decouple`` off)."""
    g = view.grad.neg() if view.group["maximize"] else view.grad
    decay = view.group["weight_decay"]
    if decay != 0 and not view.group["decouple"]:
        g = g.add(view.param, alpha=decay)
    return g


class ProdigyGradient(GradientRule):
    """Prodigy's gradient (:func:`prodigy_gradient`); with ``decouple``, decoupled decay by the
    step's ``dlr``: ``w ← w + (−λ·dlr)·w`` (Loshchilov & Hutter, ICLR 2019)."""

    hyperparameters = {"weight_decay": 0.0, "decouple": True, "maximize": False}

    def apply(self, view: UpdateView, g: Any) -> Any:
        decay = view.group["weight_decay"]
        if decay != 0 and view.group["decouple"]:
            view.param.add_(view.param, alpha=-decay * view.group["dlr"])
        return prodigy_gradient(view)

    def formula(self, group: Mapping[str, Any]) -> str:
        line = "g ← −∇f(w)" if group["maximize"] else "g ← ∇f(w)"
        if group["weight_decay"] != 0:
            line += ";  w ← w − λ·dlr·w" if group["decouple"] else ";  g ← g + λ·w"
        return line


def scaled_average_(view: UpdateView, g: Any) -> Any:
    """``m ← β1·m + d(1 − β1)·g`` (``exp_avg``, kept when β1 > 0; else nothing, None), with
    this step's ``d`` (``d_step``)."""
    beta1 = view.group["betas"][0]
    if not beta1 > 0:
        return None
    return view.state("exp_avg").mul_(beta1).add_(g, alpha=view.group["d_step"] * (1 - beta1))


def scaled_squared_average_(view: UpdateView, g: Any) -> Any:
    """``v ← β2·v + d²(1 − β2)·g²`` (``exp_avg_sq``), with this step's ``d``."""
    d, beta2 = view.group["d_step"], view.group["betas"][1]
    return view.state("exp_avg_sq").mul_(beta2).addcmul_(g, g, value=d * d * (1 - beta2))


class ScaledSquaredAverage(SecondMoment):
    """Prodigy's second moment, of ``d·g`` (Mishchenko & Defazio, 2024):

    .. math::
        v ← β_2 v + d^2 (1 − β_2) g^2, \\qquad \\text{denominator } \\sqrt{v} + d_{new}\\, ε

    with the ``d`` the moments use this step (``d_step``) and the new one for ε; only while
    the group's lr is not 0. State ``exp_avg_sq``.
    """

    hyperparameters = {"betas": (0.9, 0.999), "eps": 1e-8}
    state = (StateSpec("exp_avg_sq", signed=False),)

    def denominator(self, view: UpdateView, g: Any) -> Any:
        v = scaled_squared_average_(view, g) if view.group["lr"] > 0.0 else view.state("exp_avg_sq")
        return v.sqrt().add_(view.group["d"] * view.group["eps"])

    def formula(self, group: Mapping[str, Any]) -> str:
        return "v ← β2·v + d²(1−β2)·g²   (exp_avg_sq);  √v + d·ε"


class ScaledAverage(FirstMoment):
    """Prodigy's first moment, of ``d·g``: ``m ← β1 m + d (1 − β1) g`` (only while the group's
    lr is not 0); with β1 = 0 the step takes ``d·g`` itself (the new ``d``). State ``exp_avg``,
    kept when β1 > 0."""

    hyperparameters = {"betas": (0.9, 0.999)}
    state = (StateSpec("exp_avg", exists=lambda g: g["betas"][0] > 0),)

    def direction(self, view: UpdateView, g: Any, denom: Any) -> Direction:
        beta1 = view.group["betas"][0]
        if not beta1 > 0:
            return [Term(g, view.group["d"], denom)]
        m = scaled_average_(view, g) if view.group["lr"] > 0.0 else view.state("exp_avg")
        return [Term(m, 1.0, denom)]

    def formula(self, group: Mapping[str, Any]) -> str:
        if not group["betas"][0] > 0:
            return "m = d·g"
        return "m ← β1·m + d(1−β1)·g   (exp_avg)"


class EstimatedStepSize(LrSchedule):
    """``α_t = dlr``: the step size the estimate gave this step (``d·lr``, bias-corrected)."""

    def lr(self, view: UpdateView, lr: Scalar) -> Scalar:
        return view.group["dlr"]

    def formula(self, group: Mapping[str, Any]) -> str:
        return "α_t = d·α·(√(1−β2^{k+1})/(1−β1^{k+1}) or 1)   (dlr)"
