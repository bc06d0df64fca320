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
