"""Step 3 rules: learning-rate factors that depend on the step count ``t``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..engine.bundle import Bundle
from .base import LrSchedule, Scalar


class InverseTimeDecay(LrSchedule):
    """AdaGrad's ``lr_decay``: ``α_t = α / (1 + (t − 1)·lr_decay)``."""

    hyperparameters = {"lr_decay": 0.0}

    def factor(self, b: Bundle) -> Scalar:
        return 1 / (1 + (b.step - 1) * b.hp["lr_decay"])

    def formula(self, group: Mapping[str, Any]) -> str:
        return "α_t = α / (1 + (t−1)·lr_decay)"
