"""The tensors one executor call works on: parameters, gradients and named state.

A bundle holds either single tensors (per-tensor executor) or :class:`TensorList` s
(multi-tensor executor). Complex tensors are seen as real views, as torch.optim does, so a
rule never needs to know about complex numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from .tensorlist import TensorList, Tensors

Observer = Callable[..., None]


def real_view(t: Tensor) -> Tensor:
    return torch.view_as_real(t) if t.is_complex() and not t.is_sparse else t


def real_views(tensors: Sequence[Tensor], is_complex: bool = True) -> list[Tensor]:
    """Real views of ``tensors``; the tensors themselves when the caller knows none is
    complex (``is_complex=False`` skips the per-tensor check)."""
    return [real_view(t) for t in tensors] if is_complex else list(tensors)


def as_stored(param: Tensor, real: Tensor) -> Tensor:
    """A real-view state tensor as kept in the state dict: complex for a complex param."""
    return torch.view_as_complex(real) if param.is_complex() and not real.is_sparse else real


class Bundle:
    """Parameters, gradients and per-parameter state for one update, with uniform scalars.

    Attributes:
        param, grad: the parameters and their gradients (real views).
        step: the step count ``t`` after this step's increment (the same for every tensor).
        hp: the param group's hyperparameters, 0-d tensors already read as numbers unless
            ``differentiable``.
        differentiable: whether autograd records the update (rules then avoid in-place
            changes to tensors autograd saved).
        observer: called as ``observer(bundle, g, denom, direction, lr)`` just before the
            update, to read (never change) the step's pieces; None when nobody watches.
    """

    def __init__(
        self,
        params: Sequence[Tensor],
        grads: Sequence[Tensor],
        states: Sequence[dict[str, Any]],
        *,
        as_list: bool,
        step: float,
        hp: Mapping[str, Any],
        defaults: Mapping[str, Any],
        differentiable: bool,
        observer: Observer | None = None,
        views: bool = True,
    ) -> None:
        """``views=False``: the tensors are taken as they are, with no real views of complex
        ones (the caller knows none is complex, or the gradient is sparse: torch updates a
        complex parameter with a sparse gradient in complex arithmetic)."""
        self._bind(params, states, step=step, hp=hp, defaults=defaults,
                   differentiable=differentiable, observer=observer)
        self._as_list = as_list
        self._views = views
        self.param = self._pack(real_views(self._params, views))
        self.grad = self._pack(real_views(grads, views))

    def _bind(self, params: Sequence[Tensor], states: Sequence[dict[str, Any]], *, step: float,
              hp: Mapping[str, Any], defaults: Mapping[str, Any], differentiable: bool,
              observer: Observer | None) -> None:
        """The fields every bundle has (also set by :class:`~.tape.TapeBundle`)."""
        self._params = list(params)
        self._states = list(states)
        self.step = step
        self.hp = hp
        self.defaults = defaults
        self.differentiable = differentiable
        self.observer = observer

    def _pack(self, tensors: list[Tensor]) -> Tensors:
        return TensorList(tensors) if self._as_list else tensors[0]

    def __len__(self) -> int:
        return len(self._params)

    @property
    def params(self) -> list[Tensor]:
        """The parameters themselves (not real views), e.g. to key per-parameter records."""
        return self._params

    def has(self, name: str) -> bool:
        """Whether the state ``name`` exists (it does for all tensors of a bundle or none)."""
        return name in self._states[0]

    def state(self, name: str) -> Tensors:
        """The state tensors ``name``, as real views."""
        return self._pack(real_views([s[name] for s in self._states], self._views))

    def store(self, name: str, value: Tensors) -> None:
        """Create or replace the state ``name`` from real-view tensors."""
        tensors = value.tensors if isinstance(value, TensorList) else [value]
        for p, s, t in zip(self._params, self._states, tensors, strict=True):
            s[name] = as_stored(p, t)

    def scalar(self, name: str) -> float:
        """The value of a 0-d state such as ``mu_product`` (uniform across the bundle)."""
        return self._states[0][name].item()

    def scale_scalar_(self, name: str, factor: float) -> float:
        """``s ← s · factor`` for a 0-d state kept as a tensor, returning the stored value."""
        torch._foreach_mul_([s[name] for s in self._states], factor)
        return self.scalar(name)

    def new_zeros_state(self, name: str) -> Tensors:
        """Zero state shaped like the parameters (``preserve_format``), stored and returned."""
        zeros = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self._params]
        for s, z in zip(self._states, zeros, strict=True):
            s[name] = z
        return self.state(name)
