"""The seed's ten algorithms, by the names the reports use, built from momentopt's classes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import momentopt


@dataclass(frozen=True)
class Spec:
    """One algorithm: a momentopt class and the keyword arguments that make it this one."""

    name: str
    cls: type
    kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self, param_groups: Any, **overrides: Any) -> momentopt.RecipeOptimizer:
        return self.cls(param_groups, **{**self.kwargs, **overrides})


SEED: tuple[Spec, ...] = (
    Spec("SGD", momentopt.SGD),
    Spec("Momentum", momentopt.SGD, {"momentum": 0.9}),
    Spec("Nesterov", momentopt.SGD, {"momentum": 0.9, "nesterov": True}),
    Spec("Adagrad", momentopt.Adagrad),
    Spec("Adadelta", momentopt.Adadelta),
    Spec("RMSprop", momentopt.RMSprop),
    Spec("Adam", momentopt.Adam),
    Spec("AMSGrad", momentopt.Adam, {"amsgrad": True}),
    Spec("NAdam", momentopt.NAdam),
    Spec("AdamW", momentopt.AdamW),
)
BY_NAME: dict[str, Spec] = {spec.name: spec for spec in SEED}
NAMES: tuple[str, ...] = tuple(BY_NAME)


class UnknownName(ValueError):
    """A name that is not among the choices; the message lists the choices."""


def resolve(names: Iterable[str] | None) -> list[Spec]:
    """Specs for ``names`` (case-insensitive; None → all ten, in the seed's order)."""
    if names is None:
        return list(SEED)
    lower = {n.lower(): spec for n, spec in BY_NAME.items()}
    specs = []
    for name in names:
        spec = lower.get(name.strip().lower())
        if spec is None:
            raise UnknownName(f"unknown optimizer {name!r}; choose from {', '.join(NAMES)}")
        if spec not in specs:
            specs.append(spec)
    return specs


def split_names(text: str | None) -> list[str] | None:
    """``"Adam,SGD"`` → ``["Adam", "SGD"]``; None or "all" → None."""
    if text is None or text.strip().lower() == "all":
        return None
    return [part for part in (p.strip() for p in text.split(",")) if part]


Builder = Callable[[Sequence[dict[str, Any]]], momentopt.RecipeOptimizer]
