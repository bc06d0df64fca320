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
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from .algorithms.checks import check_group_flags, require
from .algorithms.hyperparameters import (
    DIFFERENTIABLE,
    FOREACH,
    FUSED,
    MAXIMIZE,
    RANGED,
    Bound,
)
from .engine.optimizer import RecipeOptimizer
from .engine.precision import initial_group_keys
from .engine.recipe import Recipe
from .rules.base import (
    AfterUpdate,
    FirstMoment,
    GradientRule,
    LrSchedule,
    ReducedScalar,
    Rule,
    SecondMoment,
)
from .rules.direction import Cautious, DirectionRule
from .rules.first_moment import NoFirstMoment
from .rules.gradient import Maximize, WeightDecay
from .rules.second_moment import NoSecondMoment

IMPLEMENTATION_FLAGS: dict[str, Any] = {
    entry.name: entry.default for entry in (FOREACH, MAXIMIZE, DIFFERENTIABLE, FUSED)
}
"""torch's implementation flags every composed class accepts, with their defaults."""

RANGES: dict[str, Bound] = {
    **{entry.name: entry.bound for entry in RANGED if entry.bound is not None},
    # an averaging weight, in [0, 1]: narrower than torch's SGD (dampening unchecked); alpha
    # keeps torch's RMSprop range (alpha >= 0), as AdEMAMix's mixing weight is one too
    "dampening": Bound("Invalid dampening value: {value}", high=1.0),
}
"""The allowed range of each hyperparameter the built-in rules read."""


def check_hyperparameter(name: str, value: Any) -> None:
    """Raise ``ValueError`` naming ``name`` and its range if ``value`` is outside it, and
    ``TypeError`` if it is not a value the range applies to (e.g. a string)."""
    if name not in RANGES:
        return
    bound = RANGES[name]
    if isinstance(value, tuple) and not bound.pair:  # a pair of them (Adafactor's eps)
        for v in value:
            if v is not None:
                check_hyperparameter(name, v)
        return
    allowed = bound.describe(name)
    try:
        if bound.pair and isinstance(value, tuple) and len(value) > 2:  # (AdEMAMix's three)
            inside = all(bound.holds(v) for v in value)
        else:
            inside = bound.contains(value)
    except TypeError as err:
        expected = "two numbers" if bound.pair else "a number"
        raise TypeError(
            f"Invalid {name} value: {value!r} (expected {expected}; allowed: {allowed})"
        ) from err
    require(inside, f"Invalid {name} value: {value} (allowed: {allowed})", allowed)


# What each slot of a recipe takes: the rule class of its role.
SLOTS: dict[str, type[Rule]] = {
    "first": FirstMoment,
    "second": SecondMoment,
    "gradient": GradientRule,
    "schedule": LrSchedule,
    "after": AfterUpdate,
    "direction": DirectionRule,
    "reduced": ReducedScalar,
}


def _role(cls: type) -> str:
    """Which step of the framework a rule class fills: the slot whose base class it has."""
    return next((slot for slot, base in SLOTS.items() if issubclass(cls, base)), "none")


def _what(value: Any) -> str:
    """``value`` for an error message: a rule with its role, anything else with its type."""
    if isinstance(value, Rule):
        return f"{value!r}, a rule of role {_role(type(value))!r}"
    return f"{type(value).__name__} {value!r}"


def _check_rule(owner: str, slot: str, value: Any) -> None:
    expected = SLOTS[slot.split("[")[0]]
    if not isinstance(value, expected):
        raise TypeError(
            f"{owner}: {slot} must be a {expected.__name__} (a rule of role {_role(expected)!r}), "
            f"got {_what(value)}"
        )


def check_recipe(owner: str, recipe: Any) -> None:
    """Raise ``TypeError`` naming the slot and the role it takes unless every slot of
    ``recipe`` holds a rule of its role (``gradient``, ``schedule``, ``after`` and
    ``direction``: tuples of them)."""
    if not isinstance(recipe, Recipe):
        raise TypeError(f"{owner}: recipe must be a Recipe, got {_what(recipe)}")
    _check_rule(owner, "first", recipe.first)
    _check_rule(owner, "second", recipe.second)
    if recipe.reduced is not None:
        _check_rule(owner, "reduced", recipe.reduced)
    for slot in ("gradient", "schedule", "after", "direction"):
        rules = getattr(recipe, slot)
        if not isinstance(rules, tuple):
            expected = SLOTS[slot].__name__
            raise TypeError(
                f"{owner}: {slot} must be a tuple of {expected} rules, got {_what(rules)}"
            )
        for i, rule in enumerate(rules):
            _check_rule(owner, f"{slot}[{i}]", rule)


class ComposedOptimizer(RecipeOptimizer):
    """Base of optimizers built from rules: set ``recipe`` (and optionally ``hyperparameters``).

    ``__init__(params, **hyperparameters)`` accepts every key the recipe's rules read, plus
    ``foreach``, ``maximize``, ``differentiable`` and ``fused``; each is checked against its
    allowed range. A subclass is checked when it is defined: each slot of its recipe holds a
    rule of that slot's role, and its ``hyperparameters`` are the rules' own, in range.
    """

    hyperparameters: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        recipe = getattr(cls, "recipe", None)
        if recipe is None:  # an abstract intermediate class
            return
        check_recipe(cls.__name__, recipe)
        names = cls._rule_defaults()
        unknown = sorted(set(cls.hyperparameters) - set(names))
        if unknown:
            raise TypeError(
                f"{cls.__name__}: unknown hyperparameter(s) {unknown}; it accepts {sorted(names)}"
            )
        cls.check_hyperparameters(cls.accepted())

    @classmethod
    def _rule_defaults(cls) -> dict[str, Any]:
        """The keys the recipe's rules read and the implementation flags, with their defaults."""
        return {**cls.recipe.hyperparameters(), **IMPLEMENTATION_FLAGS}

    @classmethod
    def accepted(cls) -> dict[str, Any]:
        """Every hyperparameter of the class with its default: the rules' own and the
        implementation flags, overridden by the class's ``hyperparameters``."""
        chosen = {k: v for k, v in cls.hyperparameters.items() if k != "state_precision"}
        return {**cls._rule_defaults(), **chosen}

    def __init__(self, params: Any, **hyperparameters: Any) -> None:
        # how the state is stored (momentopt.engine.precision), not a hyperparameter of a rule
        state_precision = hyperparameters.pop(
            "state_precision", type(self).hyperparameters.get("state_precision")
        )
        defaults = self.accepted()
        unknown = sorted(set(hyperparameters) - set(defaults))
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword argument(s) {unknown}; "
                f"it accepts {sorted(defaults)}"
            )
        defaults.update(hyperparameters)
        self._check_values(defaults)
        super().__init__(params, {**defaults, **initial_group_keys(state_precision)})
        check_group_flags(defaults)

    @classmethod
    def _check_values(cls, group: Mapping[str, Any]) -> None:
        """The range of every hyperparameter the class accepts (extra keys are not looked at)."""
        for name in cls.accepted():
            check_hyperparameter(name, group[name])

    @classmethod
    def check_hyperparameters(cls, group: Mapping[str, Any]) -> None:
        """Every check the constructor makes of ``group``'s values."""
        cls._check_values(group)
        check_group_flags(group)

    @classmethod
    def flag_defaults(cls) -> dict[str, Any]:
        return dict(IMPLEMENTATION_FLAGS)


def _as_tuple(value: Any) -> Any:
    """A list or tuple of rules as a tuple; anything else as it is (for the check to refuse)."""
    return tuple(value) if isinstance(value, (list, tuple)) else value


def make_recipe(
    *,
    first: FirstMoment | None = None,
    second: SecondMoment | None = None,
    gradient: Sequence[GradientRule] | None = None,
    schedule: Sequence[LrSchedule] = (),
    after: Sequence[AfterUpdate] = (),
    direction: Sequence[DirectionRule] = (),
    reduced: ReducedScalar | None = None,
) -> Recipe:
    """A :class:`~momentopt.engine.recipe.Recipe` from rules, with the defaults of
    :func:`compose`: φ = g, ψ = 1, gradient rules ``(Maximize(), WeightDecay())``, no
    schedule; the direction rules end with the ``cautious`` option
    (:class:`~momentopt.rules.direction.Cautious`). The rules are not checked here (the
    optimizer class checks them)."""
    changes = _as_tuple(direction)
    return Recipe(
        first=NoFirstMoment() if first is None else first,  # type: ignore[arg-type]
        second=NoSecondMoment() if second is None else second,  # type: ignore[arg-type]
        gradient=(Maximize(), WeightDecay()) if gradient is None else _as_tuple(gradient),
        schedule=_as_tuple(schedule),
        after=_as_tuple(after),
        direction=(*changes, Cautious()) if isinstance(changes, tuple) else changes,
        reduced=reduced,
    )


def compose(
    name: str,
    *,
    first: FirstMoment | None = None,
    second: SecondMoment | None = None,
    gradient: tuple[GradientRule, ...] | None = None,
    schedule: tuple[LrSchedule, ...] = (),
    after: tuple[AfterUpdate, ...] = (),
    direction: tuple[DirectionRule, ...] = (),
    reduced: ReducedScalar | None = None,
    **hyperparameters: Any,
) -> type[ComposedOptimizer]:
    """A new optimizer class named ``name`` from φ (``first``), ψ (``second``) and the rest.

    ``hyperparameters`` override the rules' defaults (e.g. ``lr=1e-2``). Defaults: φ = g,
    ψ = 1, gradient rules ``(Maximize(), WeightDecay())``; ``after`` holds rules run after
    the update (:class:`~momentopt.rules.base.AfterUpdate`: an average of the iterates);
    ``direction`` rules change the whole direction before the update
    (:class:`~momentopt.rules.direction.Sign`). Every composed class takes ``cautious=True``
    (:class:`~momentopt.rules.direction.Cautious`), as a default here or when it is made;
    ``reduced`` is a scalar of the whole optimizer estimated before each step
    (:class:`~momentopt.rules.base.ReducedScalar`: Prodigy's ``d``).
    The class is placed in the caller's module, so instances pickle when it is bound to a
    module-level ``name``.

    Raises ``TypeError`` for a slot holding anything but a rule of its role and for a
    hyperparameter no rule reads (naming the ones they read), ``ValueError`` for a value
    outside its range.
    """
    recipe = make_recipe(
        first=first,
        second=second,
        gradient=gradient,
        schedule=schedule,
        after=after,
        direction=direction,
        reduced=reduced,
    )
    caller = inspect.currentframe()
    module = (
        caller.f_back.f_globals.get("__name__", __name__) if caller and caller.f_back else __name__
    )
    namespace = {
        "recipe": recipe,
        "hyperparameters": dict(hyperparameters),
        "__module__": module,
        "__doc__": f"{name}: an optimizer composed from {recipe}.",
    }
    return type(name, (ComposedOptimizer,), namespace)
