"""Step 2, ψ: second-moment rules. Each keeps ``V`` and returns the denominator ``√V``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .averages import ema_, ema_of_squares_
from .base import SecondMoment
from .contract import Start, StateSpec, UpdateView


class NoSecondMoment(SecondMoment):
    """ψ = 1: plain (momentum) SGD."""

    def denominator(self, view: UpdateView, g: Any) -> None:
        return None

    def formula(self, group: Mapping[str, Any]) -> str:
        return "V = 1"


class AccumulatedSquares(SecondMoment):
    """AdaGrad's accumulator (Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online
    Learning and Stochastic Optimization", JMLR 2011).

    .. math::
        V_t = V_{t−1} + g_t^2, \\qquad \\text{denominator } \\sqrt{V_t} + ε

    State ``sum``, starting at ``initial_accumulator_value``. A sparse gradient updates only
    its rows.
    """

    hyperparameters = {"eps": 1e-10, "initial_accumulator_value": 0.0}
    state = (StateSpec("sum", Start.FILL, value="initial_accumulator_value", signed=False),)

    def denominator(self, view: UpdateView, g: Any) -> Any:
        total = view.state("sum").addcmul_(g, g, value=1)
        return total.sqrt().add_(view.group["eps"])

    def formula(self, group: Mapping[str, Any]) -> str:
        return "V ← V + g²   (sum);  √V + ε"


class SquaredAverage(SecondMoment):
    """RMSProp's second moment (Tieleman & Hinton, 2012; centered: Graves, "Generating
    Sequences With Recurrent Neural Networks", 2013).

    .. math::
        V_t = α V_{t−1} + (1 − α) g_t^2, \\qquad \\text{denominator } \\sqrt{V_t} + ε

    ``centered`` also keeps ``ḡ_t = α ḡ_{t−1} + (1 − α) g_t`` (``grad_avg``) and uses
    ``√(V_t − ḡ_t²) + ε``. State ``square_avg`` (and ``grad_avg``).
    """

    hyperparameters = {"alpha": 0.99, "eps": 1e-8, "centered": False}
    state = (
        StateSpec("square_avg", signed=False),
        StateSpec("grad_avg", exists=lambda g: bool(g["centered"])),
    )

    def denominator(self, view: UpdateView, g: Any) -> Any:
        alpha = view.group["alpha"]
        square_avg = ema_of_squares_(view.state("square_avg"), g, alpha)
        if view.group["centered"]:
            grad_avg = ema_(view.state("grad_avg"), g, alpha)
            root = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
        else:
            root = square_avg.sqrt()
        return root.add_(view.group["eps"])

    def formula(self, group: Mapping[str, Any]) -> str:
        if group["centered"]:
            return "V ← α·V + (1−α)·g²;  ḡ ← α·ḡ + (1−α)·g;  √(V − ḡ²) + ε"
        return "V ← α·V + (1−α)·g²   (square_avg);  √V + ε"


class RootMeanSquare(SecondMoment):
    """AdaDelta's second moment (Zeiler, 2012).

    .. math::
        V_t = ρ V_{t−1} + (1 − ρ) g_t^2, \\qquad \\text{denominator } \\sqrt{V_t + ε}

    State ``square_avg``.
    """

    hyperparameters = {"rho": 0.9, "eps": 1e-6}
    state = (StateSpec("square_avg", signed=False),)

    def denominator(self, view: UpdateView, g: Any) -> Any:
        square_avg = ema_of_squares_(view.state("square_avg"), g, view.group["rho"])
        return square_avg.add(view.group["eps"]).sqrt_()

    def formula(self, group: Mapping[str, Any]) -> str:
        return "V ← ρ·V + (1−ρ)·g²   (square_avg);  √(V + ε)"


class BiasCorrectedSquaredAverage(SecondMoment):
    """Adam's second moment (Kingma & Ba, 2015; AMSGrad: Reddi, Kale & Kumar, "On the
    Convergence of Adam and Beyond", ICLR 2018).

    .. math::
        v_t = β_2 v_{t−1} + (1 − β_2) g_t^2, \\qquad
        \\text{denominator } \\sqrt{v_t} / \\sqrt{1 − β_2^t} + ε

    ``amsgrad`` keeps the running maximum ``v̂_t = max(v̂_{t−1}, v_t)`` (``max_exp_avg_sq``)
    and uses it in place of ``v_t``. State ``exp_avg_sq`` (and ``max_exp_avg_sq``).

    ``root_of_corrected`` computes the same denominator as ``√(v_t / (1 − β_2^t)) + ε``:
    the bias correction before the root, in that order of rounding (torch.optim's NAdam loop).
    """

    hyperparameters = {"betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False}

    def __init__(self, root_of_corrected: bool = False) -> None:
        self.root_of_corrected = root_of_corrected

    state = (
        StateSpec("exp_avg_sq", signed=False),
        StateSpec("max_exp_avg_sq", signed=False, exists=lambda g: bool(g.get("amsgrad"))),
    )

    def denominator(self, view: UpdateView, g: Any) -> Any:
        beta2 = view.group["betas"][1]  # (AdEMAMix's betas have a third)
        v = ema_of_squares_(view.state("exp_avg_sq"), g, beta2)
        if view.group.get("amsgrad", False):
            running_max = view.state("max_exp_avg_sq")
            v = torch.maximum(running_max, v, out=running_max)
        correction = 1 - beta2**view.t
        if self.root_of_corrected:
            return v.div(correction).sqrt_().add_(view.group["eps"])
        return v.sqrt().div(correction**0.5).add_(view.group["eps"])

    def formula(self, group: Mapping[str, Any]) -> str:
        line = "v ← β2·v + (1−β2)·g²   (exp_avg_sq)"
        if group.get("amsgrad", False):
            line += ";  v̂ ← max(v̂, v)   (max_exp_avg_sq)"
        return line + ";  √(v/(1−β2^t)) + ε"

    def __repr__(self) -> str:
        return f"BiasCorrectedSquaredAverage(root_of_corrected={self.root_of_corrected})"


class InfinityNorm(SecondMoment):
    """Adamax's second moment: an exponentially weighted infinity norm (Kingma & Ba, "Adam: A
    Method for Stochastic Optimization", ICLR 2015, section 7.1).

    .. math::
        u_t = \\max(β_2 u_{t−1}, |g_t| + ε), \\qquad \\text{denominator } u_t

    The limit ``p → ∞`` of an EMA of ``|g|^p`` taken to the power ``1/p``: no root, and no
    bias correction (the max of a decayed history is not biased towards 0). State ``exp_inf``.
    """

    hyperparameters = {"betas": (0.9, 0.999), "eps": 1e-8}
    state = (StateSpec("exp_inf", signed=False),)

    def denominator(self, view: UpdateView, g: Any) -> Any:
        _, beta2 = view.group["betas"]
        exp_inf = view.state("exp_inf").mul_(beta2)
        return torch.maximum(exp_inf, g.abs().add_(view.group["eps"]), out=exp_inf)

    def formula(self, group: Mapping[str, Any]) -> str:
        return "u ← max(β2·u, |g| + ε)   (exp_inf);  u"


class RawSquaredAverage(SecondMoment):
    """Adam's second moment with ε added to the uncorrected root (Kingma & Ba, 2015,
    Algorithm 1 with the reordering of its section 2).

    .. math::
        v_t = β_2 v_{t−1} + (1 − β_2) g_t^2, \\qquad \\text{denominator } \\sqrt{v_t} + ε

    The bias correction ``√(1 − β2^t)`` is not in the denominator: it belongs to the step
    size (:class:`~.schedule.SecondMomentCorrection`), so ε is outside it — unlike
    :class:`BiasCorrectedSquaredAverage`, whose ε is added to ``√(v/(1 − β2^t))``. State
    ``exp_avg_sq``.
    """

    hyperparameters = {"betas": (0.9, 0.999), "eps": 1e-8}
    state = (StateSpec("exp_avg_sq", signed=False),)

    def average(self, view: UpdateView, g: Any) -> Any:
        """``v ← β2·v + (1 − β2)·g²`` in place; returns ``v``."""
        _, beta2 = view.group["betas"]
        return ema_of_squares_(view.state("exp_avg_sq"), g, beta2)

    def denominator(self, view: UpdateView, g: Any) -> Any:
        return self.average(view, g).sqrt().add_(view.group["eps"])

    def formula(self, group: Mapping[str, Any]) -> str:
        return "v ← β2·v + (1−β2)·g²   (exp_avg_sq);  √v + ε"


class LazySquaredAverage(RawSquaredAverage):
    """:class:`RawSquaredAverage` as a lazy average: the update is written as a step towards
    ``g²``, ``v ← v + (1 − β2)·(g² − v)``, so a sparse gradient moves ``v`` only at the
    entries it holds and the other entries keep their value, undecayed (torch.optim's
    SparseAdam). For a dense gradient it is the same average.
    """

    def average(self, view: UpdateView, g: Any) -> Any:
        _, beta2 = view.group["betas"]
        return ema_(view.state("exp_avg_sq"), g.mul(g), beta2)

    def formula(self, group: Mapping[str, Any]) -> str:
        return "v ← v + (1−β2)·(g² − v) at g's entries   (exp_avg_sq);  √v + ε"
