"""Building new optimizers from rules: a recipe in, a full torch optimizer out.

Example — Adam's first moment over AdaGrad's accumulator, with decoupled decay::

    from momentopt import compose, rules

    AdaGradMomentum = compose(
        "AdaGradMomentum",
        first=rules.BiasCorrectedAverage(),
        second=rules.AccumulatedSquares(),
        gradient=(rules.Maximize(), rules.WeightDecay(decoupled=True)),
        lr=1e-2,
    )
    opt = AdaGradMomentum(model.parameters(), betas=(0.9, 0.999), weight_decay=1e-2)

The class has param groups, ``state_dict``/``load_state_dict``, hooks and both executors like
the built-in ones. Hyperparameters are keyword arguments named as the rules read them.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from .algorithms.checks import check_flags, require
from .engine.optimizer import RecipeOptimizer
from .engine.recipe import Recipe
from .rules.base import FirstMoment, GradientRule, LrSchedule, SecondMoment
from .rules.first_moment import Gradient
from .rules.gradient import Maximize, WeightDecay
from .rules.second_moment import NoSecondMoment

IMPLEMENTATION_FLAGS: dict[str, Any] = {
    "foreach": None,
    "maximize": False,
    "differentiable": False,
    "fused": None,
}

# Allowed ranges of the hyperparameters the built-in rules read: (test, description).
RANGES: dict[str, tuple[Any, str]] = {
    "lr": (lambda v: 0.0 <= v, "lr >= 0"),
    "eps": (lambda v: 0.0 <= v, "eps >= 0"),
    "weight_decay": (lambda v: 0.0 <= v, "weight_decay >= 0"),
    "momentum": (lambda v: 0.0 <= v, "momentum >= 0"),
    "dampening": (lambda v: 0.0 <= v <= 1.0, "0 <= dampening <= 1"),
    "alpha": (lambda v: 0.0 <= v <= 1.0, "0 <= alpha <= 1"),
    "rho": (lambda v: 0.0 <= v <= 1.0, "0 <= rho <= 1"),
    "lr_decay": (lambda v: 0.0 <= v, "lr_decay >= 0"),
    "momentum_decay": (lambda v: 0.0 <= v, "momentum_decay >= 0"),
    "initial_accumulator_value": (lambda v: 0.0 <= v, "initial_accumulator_value >= 0"),
    "betas": (lambda v: len(v) == 2 and all(0.0 <= b < 1.0 for b in v), "0 <= betas[i] < 1"),
}


def check_hyperparameter(name: str, value: Any) -> None:
    """Raise ``ValueError`` naming ``name`` and its range if ``value`` is outside it."""
    if name in RANGES:
        ok, allowed = RANGES[name]
        require(bool(ok(value)), f"Invalid {name} value: {value} (allowed: {allowed})", allowed)


class ComposedOptimizer(RecipeOptimizer):
    """Base of optimizers built from rules: set ``recipe`` (and optionally ``hyperparameters``).

    ``__init__(params, **hyperparameters)`` accepts every key the recipe's rules read, plus
    ``foreach``, ``maximize``, ``differentiable`` and ``fused``; each is checked against its
    allowed range.
    """

    hyperparameters: ClassVar[dict[str, Any]] = {}

    def __init__(self, params: Any, **hyperparameters: Any) -> None:
        defaults = {**self.recipe.hyperparameters(), **self.hyperparameters, **IMPLEMENTATION_FLAGS}
        unknown = sorted(set(hyperparameters) - set(defaults))
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword argument(s) {unknown}; "
                f"it accepts {sorted(defaults)}"
            )
        defaults.update(hyperparameters)
        for name, value in defaults.items():
            check_hyperparameter(name, value)
        super().__init__(params, defaults)
        check_flags(defaults["fused"], defaults["foreach"], defaults["differentiable"])

    @classmethod
    def flag_defaults(cls) -> dict[str, Any]:
        return dict(IMPLEMENTATION_FLAGS)


def compose(
    name: str,
    *,
    first: FirstMoment | None = None,
    second: SecondMoment | None = None,
    gradient: tuple[GradientRule, ...] | None = None,
    schedule: tuple[LrSchedule, ...] = (),
    **hyperparameters: Any,
) -> type[ComposedOptimizer]:
    """A new optimizer class named ``name`` from φ (``first``), ψ (``second``) and the rest.

    ``hyperparameters`` override the rules' defaults (e.g. ``lr=1e-2``). Defaults: φ = g,
    ψ = 1, gradient rules ``(Maximize(), WeightDecay())``. The class is placed in the
    caller's module, so instances pickle when it is bound to a module-level ``name``.
    """
    recipe = Recipe(
        first=first or Gradient(),
        second=second or NoSecondMoment(),
        gradient=gradient if gradient is not None else (Maximize(), WeightDecay()),
        schedule=tuple(schedule),
    )
    caller = inspect.currentframe()
    module = caller.f_back.f_globals.get("__name__", __name__) if caller and caller.f_back else __name__
    namespace = {
        "recipe": recipe,
        "hyperparameters": dict(hyperparameters),
        "__module__": module,
        "__doc__": f"{name}: an optimizer composed from {recipe}.",
    }
    return type(name, (ComposedOptimizer,), namespace)
