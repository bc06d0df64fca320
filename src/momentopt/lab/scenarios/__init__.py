"""The lab's experiments and the claims (scenarios) they test, in the story's order."""

from __future__ import annotations

from . import digits, effective_lr, reddi, sparse, surfaces, weight_decay
from .base import (
    FAILS,
    HOLDS,
    MIXED,
    UNCHECKED,
    VERDICTS,
    Check,
    Experiment,
    Run,
    Scenario,
    Verdict,
)

_MODULES = (surfaces, sparse, effective_lr, reddi, digits, weight_decay)

EXPERIMENTS: dict[str, Experiment] = {e.name: e for m in _MODULES for e in m.EXPERIMENTS}

ORDER = (
    "SGD",
    "Momentum",
    "Nesterov",
    "Adagrad",
    "Adadelta",
    "RMSprop",
    "Adam",
    "NAdam",
    "AdamW",
)
ORDER = (
    "sgd-ravine",
    "ravine",
    "rosenbrock",
    "nesterov",
    "sparse",
    "saddle",
    "effective-lr",
    "scale-change",
    "digits",
    "reddi",
    "nadam",
    "weight-decay",
)
_ALL = {s.name: s for m in _MODULES for s in m.SCENARIOS}
SCENARIOS: dict[str, Scenario] = {name: _ALL[name] for name in ORDER}
"""Every claim, in the order of the lineage SGD → … → AdamW."""


class UnknownScenario(ValueError):
    pass


def resolve(names: list[str] | None) -> list[Scenario]:
    """Scenarios by name (None → all, in the story's order)."""
    if names is None:
        return list(SCENARIOS.values())
    out: list[Scenario] = []
    for name in names:
        key = name.strip().lower()
        if key not in SCENARIOS:
            raise UnknownScenario(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
        if SCENARIOS[key] not in out:
            out.append(SCENARIOS[key])
    return sorted(out, key=lambda s: ORDER.index(s.name))


__all__ = [
    "EXPERIMENTS",
    "FAILS",
    "HOLDS",
    "MIXED",
    "SCENARIOS",
    "ORDER",
    "UNCHECKED",
    "VERDICTS",
    "Check",
    "Experiment",
    "Run",
    "Scenario",
    "UnknownScenario",
    "Verdict",
    "resolve",
]
