"""Schedule-free learning (Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, "The Road Less
Scheduled", NeurIPS 2024): a second iterate sequence ``z`` (plain steps), its weighted average
``x`` (the weights to evaluate) and the interpolation ``y`` between them (where the gradient is
taken, and what the parameters hold while training).

.. math::
    y_t = (1 − β) z_t + β x_t, \\qquad z_{t+1} = z_t − γ_t\\, \\hat g(y_t), \\qquad
    x_{t+1} = (1 − c_{t+1}) x_t + c_{t+1} z_{t+1}

As the reference implementation (facebookresearch/schedule_free, ``schedulefree``) does, the
parameters hold ``y`` in train mode and ``x`` in eval mode, ``x`` is never stored, and ``y``
moves in place: ``y ← y + c (z − y)``, then ``y ← y − γ(1 − β(1 − c))·ĝ``. Its counters live in
the param group (``k``, ``weight_sum``, ``lr_max``, ``scheduled_lr``), advanced once per step of
the group by :class:`ScheduleFreeSchedule`.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from .averages import ema_of_squares_
from .base import Direction, FirstMoment, GroupSchedule, LrSchedule, SecondMoment, Term
from .contract import Scalar, Start, StateSpec, UpdateView

MOMENTUM_DEFAULTS: dict[str, Any] = {"betas": (0.9, 0.999), "momentum": 0.9}
"""The group key holding the interpolation β (``betas``: its first entry), with its default."""


def _beta(group: Mapping[str, Any], key: str) -> Any:
    """The interpolation β: ``group[key]``, or its first entry (``betas``)."""
    value = group[key]
    return value[0] if isinstance(value, (tuple, list)) else value


class ScheduleFreeSchedule(LrSchedule, GroupSchedule):
    """Schedule-free's step size and averaging weight (Defazio et al., 2024, Algorithm 1 and
    the reference implementation's warm-up and weighting), from the group's count ``k``:

    .. math::
        γ_k = α \\min(1, (k + 1)/T_w), \\qquad γ_{max} = \\max_{i ≤ k} γ_i, \\qquad
        w_k = (k + 1)^r\\, γ_{max}^{p}, \\qquad c_{k+1} = w_k / \\textstyle\\sum_{i ≤ k} w_i

    (T_w = ``warmup_steps``, ``r``, p = ``weight_lr_power``; c = 0 while the weights sum to 0).
    The step of ``y`` along the direction is ``α_t = γ_k (1 − β (1 − c_{k+1}))``. The group
    keeps ``k``, ``weight_sum``, ``lr_max`` and ``scheduled_lr`` (γ_k); the step reads
    ``ckp1`` (c).
    """

    counters = {
        "r": 0.0,
        "k": 0,
        "warmup_steps": 0,
        "weight_sum": 0.0,
        "lr_max": -1.0,
        "scheduled_lr": 0.0,
        "weight_lr_power": 2.0,
    }

    def __init__(self, momentum: str = "betas") -> None:
        self.momentum = momentum
        self.hyperparameters = {**self.counters, momentum: MOMENTUM_DEFAULTS[momentum]}

    def advance(self, group: MutableMapping[str, Any]) -> dict[str, Any]:
        k, warmup = group["k"], group["warmup_steps"]
        sched = (k + 1) / warmup if k < warmup else 1.0
        lr = group["scheduled_lr"] = group["lr"] * sched
        lr_max = group["lr_max"] = max(lr, group["lr_max"])
        weight = ((k + 1) ** group["r"]) * (lr_max ** group["weight_lr_power"])
        weight_sum = group["weight_sum"] = group["weight_sum"] + weight
        try:
            ckp1 = weight / weight_sum
        except ZeroDivisionError:
            ckp1 = 0
        group["k"] = k + 1
        return {"ckp1": ckp1}

    def lr(self, view: UpdateView, lr: Scalar) -> Scalar:
        beta = _beta(view.group, self.momentum)
        return view.group["scheduled_lr"] * (1 - beta * (1 - view.group["ckp1"]))

    def formula(self, group: Mapping[str, Any]) -> str:
        return (
            "γ = α·min(1, k/warmup_steps)   (scheduled_lr);  c = (k^r·γmax^p)/Σ   (weight_sum);  "
            "α_t = γ·(1 − β(1 − c))"
        )

    def __repr__(self) -> str:
        return f"ScheduleFreeSchedule(momentum={self.momentum!r})"


class GroupCorrectedSquaredAverage(SecondMoment):
    """Adam's second moment with its bias correction inside the root, counted by the group
    (schedule-free AdamW's, Defazio et al., 2024, as its reference implementation rounds it):

    .. math::
        v ← β_2 v + (1 − β_2) g^2, \\qquad \\text{denominator } \\sqrt{v / (1 − β_2^k)} + ε

    with ``k`` the group's step count (:class:`ScheduleFreeSchedule`, after its increment).
    State ``exp_avg_sq``.
    """

    hyperparameters = {"betas": (0.9, 0.999), "eps": 1e-8}
    state = (StateSpec("exp_avg_sq", signed=False),)

    def denominator(self, view: UpdateView, g: Any) -> Any:
        beta2 = view.group["betas"][1]
        v = ema_of_squares_(view.state("exp_avg_sq"), g, beta2)
        return v.div(1 - beta2 ** view.group["k"]).sqrt_().add_(view.group["eps"])

    def formula(self, group: Mapping[str, Any]) -> str:
        return "v ← β2·v + (1−β2)·g²   (exp_avg_sq);  √(v/(1−β2^k)) + ε"


class ScheduleFreeIterates(FirstMoment):
    """Schedule-free's iterates (Defazio et al., 2024, Algorithm 1): the parameters hold ``y``;
    the base sequence ``z`` (state, starting at the parameters) takes plain steps, and ``y``
    moves towards ``z`` by ``c`` before its own step.

    .. math::
        \\hat g = g/\\sqrt{V} + λ y, \\qquad y ← y + c (z − y), \\qquad z ← z − γ \\hat g

    and the direction is ``ĝ`` (with :class:`ScheduleFreeSchedule`'s ``α_t``, the update is
    ``y ← y − γ(1 − β(1 − c))·ĝ``). The decay λ (``weight_decay``) is taken at ``y``, after the
    denominator. :meth:`to_eval` and :meth:`to_train` switch the parameters between ``y`` and
    ``x``. State ``z``.
    """

    state = (StateSpec("z", Start.PARAM),)

    def __init__(self, momentum: str = "betas") -> None:
        self.momentum = momentum
        self.hyperparameters = {
            "weight_decay": 0.0,
            "train_mode": False,
            momentum: MOMENTUM_DEFAULTS[momentum],
        }

    def direction(self, view: UpdateView, g: Any, denom: Any) -> Direction:
        y, z = view.param, view.state("z")
        decay = view.group["weight_decay"]
        if denom is not None:
            normalized = g.div(denom)
            if decay != 0:
                normalized.add_(y, alpha=decay)
        else:
            normalized = g.add(y, alpha=decay) if decay != 0 else g
        y.lerp_(z, view.group["ckp1"])
        z.add_(normalized, alpha=-view.group["scheduled_lr"])
        return [Term(normalized)]

    def to_eval(self, view: UpdateView) -> None:
        """``w ← x``: from ``y`` to the average, ``x = y + (1 − 1/β)(z − y)``."""
        view.param.lerp_(view.state("z"), 1 - 1 / _beta(view.group, self.momentum))

    def to_train(self, view: UpdateView) -> None:
        """``w ← y``: from the average to ``y = x + (1 − β)(z − x)``."""
        view.param.lerp_(view.state("z"), 1 - _beta(view.group, self.momentum))

    def formula(self, group: Mapping[str, Any]) -> str:
        decay = " + λ·y" if group["weight_decay"] != 0 else ""
        return f"ĝ = g/√V{decay};  y ← y + c·(z − y);  z ← z − γ·ĝ   (z);  m = ĝ"

    def __repr__(self) -> str:
        return f"ScheduleFreeIterates(momentum={self.momentum!r})"
