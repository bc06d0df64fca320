"""The built-in scenarios, each tied to one claim of the seed explainer."""

from __future__ import annotations

from .base import Run, Scenario, Verdict
from .digits import Digits
from .effective_lr import EffectiveLr
from .reddi import Reddi
from .sparse import SparseFeatures
from .surfaces import Ravine, Rosenbrock, Saddle
from .weight_decay import WeightDecayCoupling

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Ravine(),
        Rosenbrock(),
        Saddle(),
        SparseFeatures(),
        EffectiveLr(),
        Reddi(),
        WeightDecayCoupling(),
        Digits(),
    )
}


class UnknownScenario(ValueError):
    pass


def resolve(names: list[str] | None) -> list[Scenario]:
    """Scenarios by name (None → all, in the story's order)."""
    if names is None:
        return list(SCENARIOS.values())
    out = []
    for name in names:
        key = name.strip().lower()
        if key not in SCENARIOS:
            raise UnknownScenario(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
        if SCENARIOS[key] not in out:
            out.append(SCENARIOS[key])
    return out


__all__ = ["SCENARIOS", "Run", "Scenario", "Verdict", "resolve", "UnknownScenario"]
