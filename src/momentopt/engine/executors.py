"""Executors: the ways one recipe's rule code is run over a param group's tensors.

* ``per_tensor`` — the readable reference: one tensor at a time (torch.optim's for-loop).
* ``multi_tensor`` — tensors grouped into buckets of one device, dtype and step count; each
  rule's tensor method becomes one ``torch._foreach_*`` call per bucket.
* ``fused`` — one memory pass per step: torch's fused kernel where one computes the recipe,
  otherwise the recipe's step recorded and compiled (see :mod:`.fused`); ``auto`` is the same
  executor as the default choice, compiling only where it pays.

All run the very same :meth:`Recipe.run`; they only decide how tensors are packed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import Tensor

from .bundle import Bundle, Observer, real_view
from .recipe import Recipe

Executor = Callable[..., None]


def _scalar_values(state: Mapping[str, Any], names: Sequence[str]) -> tuple[float, ...]:
    return tuple(float(state[name]) for name in names if name in state)


def per_tensor(
    recipe: Recipe,
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    states: Sequence[dict[str, Any]],
    *,
    hp: Mapping[str, Any],
    defaults: Mapping[str, Any],
    differentiable: bool,
    observer: Observer | None = None,
) -> None:
    """Run the recipe on one parameter at a time."""
    for p, g, s in zip(params, grads, states, strict=True):
        step = float(s["step"]) if "step" in s else 0.0
        bundle = Bundle(
            [p], [g], [s], as_list=False, step=step, hp=hp, defaults=defaults,
            differentiable=differentiable,
            observer=observer,
        )
        recipe.run(bundle)


def multi_tensor(
    recipe: Recipe,
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    states: Sequence[dict[str, Any]],
    *,
    hp: Mapping[str, Any],
    defaults: Mapping[str, Any],
    differentiable: bool,
    observer: Observer | None = None,
) -> None:
    """Run the recipe once per bucket of tensors that share device, dtype and scalar state.

    Sparse gradients are left to :func:`per_tensor`, as in torch.optim.
    """
    lazy = recipe.lazy_state(hp)
    buckets: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    sparse: list[int] = []
    for i, (p, g, s) in enumerate(zip(params, grads, states, strict=True)):
        if g.is_sparse:
            sparse.append(i)
            continue
        view = real_view(p)
        key = (
            view.device,
            view.dtype,
            _scalar_values(s, recipe.scalar_state),
            tuple(name in s for name in lazy),
        )
        buckets[key].append(i)
    for (_, _, scalars, _), members in buckets.items():
        bundle = Bundle(
            [params[i] for i in members],
            [grads[i] for i in members],
            [states[i] for i in members],
            as_list=True,
            step=scalars[0] if recipe.counts_steps else 0.0,
            hp=hp,
            defaults=defaults,
            differentiable=differentiable,
            observer=observer,
        )
        recipe.run(bundle)
    if sparse:
        per_tensor(
            recipe,
            [params[i] for i in sparse],
            [grads[i] for i in sparse],
            [states[i] for i in sparse],
            hp=hp,
            defaults=defaults,
            differentiable=differentiable,
            observer=observer,
        )


def _fused(*args: Any, **kwargs: Any) -> None:
    from .fused import fused

    fused(*args, **kwargs)


def _auto(*args: Any, **kwargs: Any) -> None:
    from .fused import auto

    auto(*args, **kwargs)


EXECUTORS: dict[str, Executor] = {
    "per_tensor": per_tensor,
    "multi_tensor": multi_tensor,
    "fused": _fused,  # fused=True: torch's fused kernel for the recipe, or the recipe compiled
    "auto": _auto,  # default flags: "fused" where it pays, multi-tensor elsewhere
}
