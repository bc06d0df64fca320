"""The tensors of one param group's step, and their buckets."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from .packing import fill_scalars, scale_scalars
from .precision import Format
from .recipe import Recipe
from .views import Observer


@dataclass
class GroupTensors:
    """The tensors of one param group's step, as the paths see them.

    Attributes:
        recipe: the rules to run.
        params, grads, states: the parameters that have a gradient, with their state dicts.
        group: the group's hyperparameters (tensor hyperparameters stay tensors).
        differentiable: whether autograd records the update.
        observer: see :class:`~.views.TensorsView`.
        scalars: every scalar state's values (name → one per tensor; ``step`` after this
            step's increment) when read in one op from packed state; None otherwise.
        cache: the optimizer's per-group cache (packings, scratch buffers), kept between
            steps.
        grad_scale, found_inf: ``torch.amp.GradScaler``'s scale and inf flag under
            ``fused=True``; None otherwise.
        formats: per tensor, its states kept compact between steps (``state_precision``,
            :mod:`.precision`), or None when every state is full precision.
        salts: per tensor, the seed of its states' stochastic rounding (with ``formats``).
    """

    recipe: Recipe
    params: list[Tensor]
    grads: list[Tensor]
    states: list[dict[str, Any]]
    group: Any
    differentiable: bool = False
    observer: Observer | None = None
    scalars: dict[str, list[float]] | None = None
    cache: dict[Any, Any] = field(default_factory=dict)
    grad_scale: Tensor | None = None
    found_inf: Tensor | None = None
    formats: list[dict[str, Format]] | None = None
    salts: list[int] | None = None

    def subset(self, indices: Sequence[int] | None) -> GroupTensors:
        """The same step restricted to ``indices`` (None: all of it)."""
        if indices is None or len(indices) == len(self.params):
            return self
        return replace(
            self,
            params=[self.params[i] for i in indices],
            grads=[self.grads[i] for i in indices],
            states=[self.states[i] for i in indices],
            scalars=None
            if self.scalars is None
            else {k: [v[i] for i in indices] for k, v in self.scalars.items()},
            formats=None if self.formats is None else [self.formats[i] for i in indices],
            salts=None if self.salts is None else [self.salts[i] for i in indices],
        )

    @property
    def compact(self) -> bool:
        """Whether some tensor keeps a compact state (:mod:`.precision`)."""
        return self.formats is not None and any(self.formats)

    def scale_scalar_(self, name: str, factor: float) -> None:
        """``s[name] *= factor`` for every state (one op when packed)."""
        scale_scalars(self.states, name, factor, self.cache)

    def set_scalar(self, name: str, value: Any) -> None:
        """``s[name] ← value`` for every state (one op when packed)."""
        fill_scalars(self.states, name, value, self.cache)

    @property
    def skipped(self) -> bool:
        """Whether GradScaler found an inf: every path but torch's kernels skips the step."""
        return self.found_inf is not None and bool(self.found_inf)


BucketKey = tuple[torch.device, torch.dtype, tuple[float, ...], tuple[Any, ...]]


def buckets(batch: GroupTensors) -> tuple[dict[BucketKey, list[int] | None], list[int]]:
    """Positions of the dense-gradient tensors grouped by (device, dtype, scalar state
    values, which states created during a step exist, which states kept for some shapes
    only the tensor keeps and which it keeps compact) — None for "all of them", the usual
    case — and the positions of the sparse ones."""
    layout, states = batch.recipe.state, batch.states
    names = layout.scalar_names
    sparse = [i for i, g in enumerate(batch.grads) if g.is_sparse]
    if not names:
        scalars: list[tuple[float, ...]] = [()] * len(states)
    elif batch.scalars is not None:
        scalars = list(zip(*(batch.scalars[n] for n in names), strict=True))
    else:
        scalars = [tuple(float(s[n]) for n in names if n in s) for s in states]
    lazy = layout.created_in_step(batch.group)
    shaped = layout.by_shape(batch.group)
    kinds: dict[tuple[int, ...], tuple[bool, ...]] = {}  # (per shape: many tensors share one)
    for p in batch.params if shaped else ():
        if p.shape not in kinds:
            kinds[p.shape] = tuple(spec.applies(p.shape) for spec in shaped)
    present = (
        [
            (*(n in s for n in lazy), *kinds.get(p.shape, ()))
            for p, s in zip(batch.params, states, strict=True)
        ]
        if lazy or shaped
        else ([()] * len(states))
    )
    if batch.formats is not None:
        present = [(*k, tuple(f.items())) for k, f in zip(present, batch.formats, strict=True)]
    columns = ([p.device for p in batch.params], [p.dtype for p in batch.params], scalars, present)
    if not sparse and all(len(set(column)) == 1 for column in columns):  # the usual case
        return {tuple(column[0] for column in columns): None}, []  # type: ignore[dict-item]
    grouped: dict[BucketKey, list[int]] = defaultdict(list)
    skip = set(sparse)
    for i, key in enumerate(zip(*columns, strict=True)):
        if i not in skip:
            grouped[key].append(i)  # type: ignore[index]
    return grouped, sparse  # type: ignore[return-value]
