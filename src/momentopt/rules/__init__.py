"""The building blocks of every optimizer: one rule per idea, each written once.

Rules are math only: they import nothing from :mod:`momentopt.engine`; the contract they are
written against is :mod:`.contract`.
"""

from .base import Direction, FirstMoment, GradientRule, LrSchedule, Rule, SecondMoment, Term
from .contract import Start, StateSpec, UpdateView
from .first_moment import (
    BiasCorrectedAverage,
    DeltaScaledGradient,
    HeavyBall,
    NesterovAverage,
    NoFirstMoment,
    ScaledMomentum,
)
from .gradient import Maximize, WeightDecay
from .schedule import InverseTimeDecay
from .second_moment import (
    AccumulatedSquares,
    BiasCorrectedSquaredAverage,
    NoSecondMoment,
    RootMeanSquare,
    SquaredAverage,
)

__all__ = [
    "AccumulatedSquares",
    "BiasCorrectedAverage",
    "BiasCorrectedSquaredAverage",
    "DeltaScaledGradient",
    "Direction",
    "FirstMoment",
    "NoFirstMoment",
    "GradientRule",
    "HeavyBall",
    "InverseTimeDecay",
    "LrSchedule",
    "Maximize",
    "NesterovAverage",
    "NoSecondMoment",
    "RootMeanSquare",
    "Rule",
    "ScaledMomentum",
    "SecondMoment",
    "SquaredAverage",
    "Start",
    "StateSpec",
    "Term",
    "UpdateView",
    "WeightDecay",
]
