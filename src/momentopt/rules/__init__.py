"""The building blocks of every optimizer: one rule per idea, each written once.

Rules are math only: they import nothing from :mod:`momentopt.engine`; the contract they are
written against is :mod:`.contract`.
"""

from .base import (
    AfterUpdate,
    Direction,
    FirstMoment,
    GradientRule,
    GroupSchedule,
    LrSchedule,
    ReducedScalar,
    Rule,
    SecondMoment,
    Term,
)
from .contract import Scalars, Start, StateSpec, UpdateView, each, matrix_function
from .direction import Cautious, DirectionRule, Sign
from .factored import FactoredSquaredAverage, RelativeStepSize, RmsClipped
from .first_moment import (
    BiasCorrectedAverage,
    DeltaScaledGradient,
    HeavyBall,
    NesterovAverage,
    NoFirstMoment,
    ScaledMomentum,
)
from .gradient import Maximize, WeightDecay
from .iterate_averaging import DecayingStepSize, IterateAverage, StepSizeDecay
from .mixed_moments import InterpolatedMomentum, MixedAverage
from .orthogonal import AveragedMomentum, Orthogonalized, ShapeAdjustedLr, newton_schulz
from .previous_moment import DecayFromFirstUpdate, NormalizedAverage, PreviousSquaredAverage
from .rectification import Rectification, RectifiedSquaredAverage
from .schedule import InverseTimeDecay, SecondMomentCorrection
from .schedule_free import (
    GroupCorrectedSquaredAverage,
    ScheduleFreeIterates,
    ScheduleFreeSchedule,
)
from .second_moment import (
    AccumulatedSquares,
    BiasCorrectedSquaredAverage,
    InfinityNorm,
    LazySquaredAverage,
    NoSecondMoment,
    RawSquaredAverage,
    RootMeanSquare,
    SquaredAverage,
)
from .sign_step import ResilientStep, UnitStepSize
from .step_size_estimate import (
    EstimatedStepSize,
    ProdigyEstimate,
    ProdigyGradient,
    ScaledAverage,
    ScaledSquaredAverage,
)
from .weight_decay import RelativeWeightDecay

__all__ = [
    "Cautious",
    "EstimatedStepSize",
    "ProdigyEstimate",
    "ProdigyGradient",
    "ReducedScalar",
    "ScaledAverage",
    "ScaledSquaredAverage",
    "GroupCorrectedSquaredAverage",
    "GroupSchedule",
    "ScheduleFreeIterates",
    "ScheduleFreeSchedule",
    "DecayFromFirstUpdate",
    "NormalizedAverage",
    "PreviousSquaredAverage",
    "DirectionRule",
    "InterpolatedMomentum",
    "MixedAverage",
    "RelativeWeightDecay",
    "Sign",
    "AfterUpdate",
    "DecayingStepSize",
    "IterateAverage",
    "ResilientStep",
    "StepSizeDecay",
    "UnitStepSize",
    "AveragedMomentum",
    "FactoredSquaredAverage",
    "Orthogonalized",
    "RelativeStepSize",
    "RmsClipped",
    "Scalars",
    "ShapeAdjustedLr",
    "each",
    "matrix_function",
    "newton_schulz",
    "AccumulatedSquares",
    "BiasCorrectedAverage",
    "BiasCorrectedSquaredAverage",
    "DeltaScaledGradient",
    "Direction",
    "FirstMoment",
    "NoFirstMoment",
    "GradientRule",
    "HeavyBall",
    "InfinityNorm",
    "InverseTimeDecay",
    "LazySquaredAverage",
    "LrSchedule",
    "Maximize",
    "NesterovAverage",
    "NoSecondMoment",
    "RawSquaredAverage",
    "Rectification",
    "RectifiedSquaredAverage",
    "RootMeanSquare",
    "Rule",
    "ScaledMomentum",
    "SecondMoment",
    "SecondMomentCorrection",
    "SquaredAverage",
    "Start",
    "StateSpec",
    "Term",
    "UpdateView",
    "WeightDecay",
]
