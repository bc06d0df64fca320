"""Averaged SGD: a step size that decays with ``t`` and is kept in state, the weight decay
that comes with it, and the average of the iterates kept after each update."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .base import AfterUpdate, GradientRule, LrSchedule
from .contract import Scalar, Start, StateSpec, UpdateView


class DecayingStepSize(LrSchedule, AfterUpdate):
    """Averaged SGD's step size (Bottou, "Stochastic Gradient Descent Tricks", Neural
    Networks: Tricks of the Trade, 2012, section 5.3), kept in state.

    .. math::
        α_t = η_t, \\qquad η_1 = α, \\qquad η_{t+1} = α / (1 + λ α t)^{p}

    (λ = ``lambd``, p = ``alpha``). The next step size is computed after the update, from
    the group's ``α`` at that time. State ``eta`` (a scalar).
    """

    hyperparameters = {"lambd": 1e-4, "alpha": 0.75}
    state = (StateSpec("eta", Start.FILL, scalar=True, value="lr"),)

    def lr(self, view: UpdateView, lr: Scalar) -> Scalar:
        return view.scalar("eta")

    def after(self, view: UpdateView) -> None:
        lr, group = view.group["lr"], view.group
        view.set_scalar("eta", lr / (1 + group["lambd"] * lr * view.t) ** group["alpha"])

    def formula(self, group: Mapping[str, Any]) -> str:
        return "α_t = eta   (eta₁ = α)"

    def after_formula(self, group: Mapping[str, Any]) -> str:
        return "eta ← α/(1 + λ·α·t)^alpha"


class StepSizeDecay(GradientRule):
    """Decay of the weights at the step's own step size, as averaged SGD decays them for its
    L2 term λ/2·‖w‖² (Bottou, 2012):

    .. math::
        w ← w \\, (1 − λ α_t)

    (λ = ``lambd``), where ``α_t`` is the step size the ``schedule`` rules give this step
    (for averaged SGD, :class:`DecayingStepSize`'s η). The decay comes before the update and
    after the gradient rules listed before it (a coupled decay sees ``w`` undecayed).
    """

    hyperparameters = {"lambd": 1e-4}

    def __init__(self, schedule: Sequence[LrSchedule]) -> None:
        self.schedule = tuple(schedule)

    def apply(self, view: UpdateView, g: Any) -> Any:
        step = view.group["lr"]
        for rule in self.schedule:
            step = rule.lr(view, step)
        view.param.mul_(1 - view.group["lambd"] * step)
        return g

    def formula(self, group: Mapping[str, Any]) -> str:
        return "w ← w·(1 − λ·α_t)   (λ = lambd)"

    def __repr__(self) -> str:
        return f"StepSizeDecay(schedule={self.schedule!r})"


class IterateAverage(AfterUpdate):
    """The average of the iterates (Polyak & Juditsky, "Acceleration of Stochastic
    Approximation by Averaging", SIAM J. Control Optim. 1992), from step ``t0`` on (Bottou,
    2012, section 5.3), kept after each update.

    .. math::
        \\bar w ← \\bar w + μ_t (w − \\bar w), \\qquad μ_{t+1} = 1 / \\max(1, t − t_0)

    (with μ = 1, ``w̄ ← w``: before ``t0`` the average is the last iterate). State ``mu`` (a
    scalar, starting at 1) and ``ax`` (w̄).
    """

    hyperparameters = {"t0": 1e6}
    state = (StateSpec("mu", Start.ONE, scalar=True, signed=False), StateSpec("ax"))

    def after(self, view: UpdateView) -> None:
        mu, average = view.scalar("mu"), view.state("ax")
        if mu != 1:  # (−w̄ + w: w − w̄ computed on w̄, which every path's tensors take)
            average.add_(average.neg().add_(view.param).mul_(mu))
        else:
            average.copy_(view.param)
        view.set_scalar("mu", 1 / max(1, view.t - view.group["t0"]))

    def after_formula(self, group: Mapping[str, Any]) -> str:
        return "w̄ ← w̄ + μ·(w − w̄)   (ax; μ = 1: w̄ ← w);  μ ← 1/max(1, t − t0)   (mu)"
