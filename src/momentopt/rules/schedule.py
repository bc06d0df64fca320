"""Step 3 rules: learning rates that depend on the step count ``t``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import LrSchedule
from .contract import Scalar, UpdateView


class InverseTimeDecay(LrSchedule):
    """``α_t = α / (1 + (t − 1)·lr_decay)`` (AdaGrad's ``lr_decay``; Duchi et al., 2011)."""

    hyperparameters = {"lr_decay": 0.0}

    def lr(self, view: UpdateView, lr: Scalar) -> Scalar:
        return lr / (1 + (view.t - 1) * view.group["lr_decay"])

    def formula(self, group: Mapping[str, Any]) -> str:
        return "α_t = α / (1 + (t−1)·lr_decay)"


class SecondMomentCorrection(LrSchedule):
    """``α_t = α·√(1 − β2^t)``: the bias correction of a second moment kept uncorrected
    (:class:`~.second_moment.RawSquaredAverage`), applied to the step size, so that ε stays
    outside it (Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015,
    section 2)."""

    hyperparameters = {"betas": (0.9, 0.999)}

    def lr(self, view: UpdateView, lr: Scalar) -> Scalar:
        _, beta2 = view.group["betas"]
        return lr * (1 - beta2**view.t) ** 0.5

    def formula(self, group: Mapping[str, Any]) -> str:
        return "α_t = α·√(1−β2^t)"
