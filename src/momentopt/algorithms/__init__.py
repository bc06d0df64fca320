"""The lineage from SGD to AdamW as drop-in replacements for torch.optim, each a short recipe."""

from .adadelta import Adadelta
from .adafactor import Adafactor
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .ademamix import AdEMAMix
from .adopt import ADOPT
from .asgd import ASGD
from .lbfgs import LBFGS
from .lion import Lion
from .muon import Muon
from .nadam import NAdam
from .prodigy import Prodigy
from .radam import RAdam
from .rmsprop import RMSprop
from .rprop import Rprop
from .schedule_free import ScheduleFreeAdamW, ScheduleFreeSGD
from .sgd import SGD
from .sparse_adam import SparseAdam

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
]
