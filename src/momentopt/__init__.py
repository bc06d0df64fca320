"""momentopt: every optimizer from SGD to AdamW as one four-step engine of φ/ψ rules."""

from . import diagnostics, rules
from .algorithms import (
    ADOPT,
    ASGD,
    LBFGS,
    SGD,
    Adadelta,
    Adafactor,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    AdEMAMix,
    Lion,
    Muon,
    NAdam,
    Prodigy,
    RAdam,
    RMSprop,
    Rprop,
    ScheduleFreeAdamW,
    ScheduleFreeSGD,
    SparseAdam,
)
from .compose import ComposedOptimizer, compose
from .engine.optimizer import RecipeOptimizer
from .engine.precision import full_precision_state_dict
from .engine.recipe import Recipe

__version__ = "0.1.0"

__all__ = [
    "SGD",
    "Adagrad",
    "Adadelta",
    "RMSprop",
    "Adam",
    "AdamW",
    "NAdam",
    "Adamax",
    "RAdam",
    "SparseAdam",
    "LBFGS",
    "Adafactor",
    "Muon",
    "ASGD",
    "Rprop",
    "Lion",
    "ADOPT",
    "AdEMAMix",
    "ScheduleFreeAdamW",
    "ScheduleFreeSGD",
    "Prodigy",
    "ComposedOptimizer",
    "Recipe",
    "RecipeOptimizer",
    "compose",
    "full_precision_state_dict",
    "diagnostics",
    "rules",
    "__version__",
]
