"""The building blocks of every optimizer: one rule per idea, each written once."""

from .base import Direction, FirstMoment, GradientRule, LrSchedule, Rule, SecondMoment, Term
from .first_moment import (
    BiasCorrectedAverage,
    DeltaScaledGradient,
    Gradient,
    HeavyBall,
    NesterovAverage,
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
    "Gradient",
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
    "Term",
    "WeightDecay",
]
