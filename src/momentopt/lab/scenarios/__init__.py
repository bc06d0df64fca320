"""The lab's experiments and the claims (scenarios) they test, in the story's order."""

from __future__ import annotations

from . import digits, effective_lr, modern, quadratic, reddi, sparse, surfaces, weight_decay
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

_LINEAGE_MODULES = (surfaces, sparse, effective_lr, reddi, digits, weight_decay)

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e for m in (*_LINEAGE_MODULES, modern, quadratic) for e in m.EXPERIMENTS
}

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
"""The lineage's claims, SGD → … → AdamW: what ``momentopt compare`` tests by default."""
_LINEAGE = {s.name: s for m in _LINEAGE_MODULES for s in m.SCENARIOS}

MODERN_ORDER = tuple(s.name for s in modern.SCENARIOS)
"""The newer optimizers' claims against AdamW (``momentopt compare --modern``)."""

SCENARIOS: dict[str, Scenario] = {name: _LINEAGE[name] for name in ORDER} | {
    s.name: s for s in modern.SCENARIOS
}
"""Every claim: the lineage's in its order, then the newer optimizers'."""

GROUPS: dict[str, tuple[str, ...]] = {"lineage": ORDER, "modern": MODERN_ORDER}
"""Names that select a whole set of claims in ``--scenario``."""


class UnknownScenario(ValueError):
    pass


def resolve(names: list[str] | None) -> list[Scenario]:
    """Scenarios by name or group (``lineage``, ``modern``), in the story's order; None → the
    lineage's."""
    if names is None:
        names = ["lineage"]
    out: list[Scenario] = []
    for name in names:
        key = name.strip().lower()
        if key in GROUPS:
            chosen = [SCENARIOS[n] for n in GROUPS[key]]
        elif key in SCENARIOS:
            chosen = [SCENARIOS[key]]
        else:
            raise UnknownScenario(
                f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)} "
                f"(or a group: {', '.join(GROUPS)})"
            )
        out += [s for s in chosen if s not in out]
    order = list(SCENARIOS)
    return sorted(out, key=lambda s: order.index(s.name))


__all__ = [
    "EXPERIMENTS",
    "FAILS",
    "GROUPS",
    "HOLDS",
    "MIXED",
    "MODERN_ORDER",
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
