"""Executors: the ways one recipe's rule code is run over a param group's tensors.

* ``per_tensor`` — the readable reference: one tensor at a time (torch.optim's for-loop).
* ``multi_tensor`` — tensors grouped into buckets of one device, dtype and step count; each
  rule's tensor method becomes one ``torch._foreach_*`` call per bucket.
* ``fused`` — one memory pass per step: torch's fused kernel where one computes the recipe,
  otherwise the recipe's step recorded and compiled (see :mod:`.fused`); ``auto`` is the same
  executor as the default choice, compiling only where it pays.

All run the very same :meth:`Recipe.run` on a :class:`Step`; they only decide how tensors
are packed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from .bundle import Bundle, Observer
from .packing import scale_scalars
from .recipe import Recipe


@dataclass
class Step:
    """One param group's step as an executor sees it.

    Attributes:
        recipe: the rules to run.
        params, grads, states: the parameters that have a gradient, with their state dicts.
        hp: the group's hyperparameters (0-d tensors read as numbers unless differentiable).
        defaults: the optimizer's defaults.
        differentiable: whether autograd records the update.
        observer: see :class:`~momentopt.engine.bundle.Bundle`.
        scalars: every 0-d state's values (name → one per tensor; ``step`` after this step's
            increment) when read in one op from packed state; None otherwise.
        cache: the optimizer's executor cache (packings, scratch buffers), kept between steps.
        grad_scale, found_inf: ``torch.amp.GradScaler``'s scale and inf flag under
            ``fused=True`` (see :func:`~.fused.fused`); None otherwise.
    """

    recipe: Recipe
    params: list[Tensor]
    grads: list[Tensor]
    states: list[dict[str, Any]]
    hp: Mapping[str, Any]
    defaults: Mapping[str, Any]
    differentiable: bool = False
    observer: Observer | None = None
    scalars: dict[str, list[float]] | None = None
    cache: dict[Any, Any] = field(default_factory=dict)
    grad_scale: Tensor | None = None
    found_inf: Tensor | None = None

    def subset(self, indices: Sequence[int]) -> Step:
        """The same step restricted to ``indices``."""
        return replace(
            self,
            params=[self.params[i] for i in indices],
            grads=[self.grads[i] for i in indices],
            states=[self.states[i] for i in indices],
            scalars=None if self.scalars is None else {
                k: [v[i] for i in indices] for k, v in self.scalars.items()
            },
        )

    def scale_scalar_(self, name: str, factor: float) -> None:
        """``s[name] *= factor`` for every state (one op when packed)."""
        scale_scalars(self.states, name, factor, self.cache)

    def bundle(self, as_list: bool, count: float, views: bool = True) -> Bundle:
        """All of this step's tensors as one bundle whose step count is ``count`` (``views``:
        see :class:`~.bundle.Bundle`)."""
        return Bundle(
            self.params, self.grads, self.states, as_list=as_list, step=count, hp=self.hp,
            defaults=self.defaults, differentiable=self.differentiable, observer=self.observer,
            views=views,
        )


BucketKey = tuple[torch.device, torch.dtype, tuple[float, ...], tuple[bool, ...]]


def buckets(step: Step) -> tuple[dict[BucketKey, list[int]], list[int]]:
    """Indices of the dense-gradient tensors grouped by (device, dtype, scalar state values,
    which lazy states exist), and the indices of the sparse ones."""
    recipe, states = step.recipe, step.states
    sparse = [i for i, g in enumerate(step.grads) if g.is_sparse]
    if not recipe.scalar_state:
        scalars: list[tuple[float, ...]] = [()] * len(states)
    elif step.scalars is not None:
        scalars = list(zip(*(step.scalars[n] for n in recipe.scalar_state)))
    else:
        scalars = [tuple(float(s[n]) for n in recipe.scalar_state if n in s) for s in states]
    lazy = recipe.lazy_state(step.hp)
    present = list(zip(*([n in s for s in states] for n in lazy))) if lazy else [()] * len(states)
    columns = ([p.device for p in step.params], [p.dtype for p in step.params], scalars, present)
    if not sparse and all(len(set(column)) == 1 for column in columns):  # the usual case
        return {tuple(column[0] for column in columns): list(range(len(states)))}, []  # type: ignore[dict-item]
    grouped: dict[BucketKey, list[int]] = defaultdict(list)
    skip = set(sparse)
    for i, key in enumerate(zip(*columns)):
        if i not in skip:
            grouped[key].append(i)
    return grouped, sparse


def per_tensor(step: Step) -> None:
    """Run the recipe on one parameter at a time."""
    for i, s in enumerate(step.states):
        count = s["step"].item() if "step" in s else 0.0  # (float() warns when it needs grad)
        one = step.subset([i])
        step.recipe.run(one.bundle(as_list=False, count=count, views=not one.grads[0].is_sparse))

def multi_tensor(step: Step) -> None:
    """Run the recipe once per bucket of tensors that share device, dtype and scalar state.

    Sparse gradients are left to :func:`per_tensor`, as in torch.optim.
    """
    grouped, sparse = buckets(step)
    for key, members in grouped.items():
        run_bucket(step.subset(members) if len(members) != len(step.params) else step, key)
    if sparse:
        per_tensor(step.subset(sparse))


def run_bucket(step: Step, key: BucketKey) -> None:
    """Run the recipe once over one bucket (``key`` from :func:`buckets`) as tensor lists."""
    count = key[2][0] if step.recipe.counts_steps else 0.0
    step.recipe.run(step.bundle(as_list=True, count=count, views=key[1].is_complex))


def _fused(step: Step) -> None:
    from .fused import fused

    fused(step)


def _auto(step: Step) -> None:
    from .fused import fused

    fused(step, auto=True)


Executor = Callable[[Step], None]

EXECUTORS: dict[str, Executor] = {
    "per_tensor": per_tensor,
    "multi_tensor": multi_tensor,
    "fused": _fused,  # fused=True: torch's fused kernel for the recipe, or the recipe compiled
    "auto": _auto,  # default flags: "fused" where it pays, multi-tensor elsewhere
}
