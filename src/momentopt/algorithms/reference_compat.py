"""The conventions of the reference implementations the newer optimizers follow (lion-pytorch,
torch-adopt, schedulefree, prodigyopt, apple/ml-ademamix): what is not math, written once.

Each of those packages is a ``torch.optim.Optimizer`` of its own; momentopt's classes take the
package's signature, defaults, checks (their exception types, with messages that name the
argument), group keys and state keys, plus torch's implementation flags where they make sense.
A table row's ``since`` names the package release the argument comes from (``MOMENTOPT`` for
the flags momentopt adds).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..engine.recipe import Recipe
from ..rules.base import (
    AfterUpdate,
    FirstMoment,
    GradientRule,
    LrSchedule,
    ReducedScalar,
    SecondMoment,
)
from ..rules.direction import Cautious, DirectionRule
from ..rules.second_moment import NoSecondMoment

MOMENTOPT = "momentopt 0.1"
"""The ``since`` of the flags momentopt adds to a reference package's signature."""


def reference_recipe(
    first: FirstMoment,
    second: SecondMoment | None = None,
    *,
    gradient: tuple[GradientRule, ...],
    schedule: tuple[LrSchedule, ...] = (),
    direction: tuple[DirectionRule, ...] = (),
    after: tuple[AfterUpdate, ...] = (),
    reduced: ReducedScalar | None = None,
    state_order: Sequence[str],
    counts_steps: bool = True,
) -> Recipe:
    """A recipe with the reference package's state key order (``state_order``), and the
    cautious option (:class:`~momentopt.rules.direction.Cautious`) last among the direction
    rules."""
    return Recipe(
        first=first,
        second=NoSecondMoment() if second is None else second,
        gradient=gradient,
        schedule=schedule,
        direction=(*direction, Cautious()),
        after=after,
        reduced=reduced,
        counts_steps=counts_steps,
        state_order=state_order,
    )
