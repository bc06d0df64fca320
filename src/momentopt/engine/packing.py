"""Packed state: the state of many parameters kept as views of one flat buffer per name.

A model of thousands of small tensors costs one kernel launch per tensor per op (and, for
torch's fused CPU kernels, one parallel region per tensor). Two packings remove that:

* :class:`PackedScalars` — a param group's 0-d states (``step``, ``mu_product``) are views
  of one 1-D tensor per name, so ``step += 1`` for every parameter is one op, and reading
  every count (to group tensors by step) is one ``tolist()``.
* :class:`Chunk` — a run of small parameters whose state tensors (``exp_avg``, ...) are
  views of one flat buffer per state name. A fused step copies the parameters and gradients
  into a reusable scratch buffer, runs one kernel over the flat buffers and copies the
  parameters back: three copies per tensor and one kernel call per chunk, and no copy of the
  state at all.

The state dict still holds one tensor per parameter and name (a view), so it loads into
torch.optim unchanged. Whenever a state entry is no longer the view a packing made (after
``load_state_dict`` or a user's edit), the packing is rebuilt from the current values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .views import as_stored, real_view, set_scalars


def _same(stored: Sequence[Any], current: Sequence[Any]) -> bool:
    return len(stored) == len(current) and all(
        a is b for a, b in zip(stored, current, strict=False)
    )


class PackedScalars:
    """A group's 0-d ``name`` states as views ``flat[i]`` of one 1-D tensor."""

    def __init__(self, states: Sequence[dict[str, Any]], name: str) -> None:
        values = [s[name] for s in states]
        self.flat = torch.stack(values)
        self.views = list(self.flat.unbind())
        for s, v in zip(states, self.views, strict=True):
            s[name] = v
        self.name = name

    @staticmethod
    def packable(values: Sequence[Any]) -> bool:
        """Plain 0-d tensors of one dtype and device (anything else stays unpacked)."""
        first = values[0]
        return all(
            type(v) is Tensor
            and v.dim() == 0
            and not v.requires_grad
            and v.dtype == first.dtype
            and v.device == first.device
            for v in values
        )

    def holds(self, states: Sequence[dict[str, Any]]) -> bool:
        """Whether ``states`` are exactly the states packed, each entry still our view."""
        return _same(self.views, [s[self.name] for s in states])


def advance_step_counts(
    states: Sequence[dict[str, Any]], names: Sequence[str], cache: dict[Any, Any]
) -> dict[str, list[float]] | None:
    """Advance every ``step`` count by one and return the values of the scalar states
    ``names`` (name → one value per state, ``step`` after the increment).

    Each name's 0-d tensors are packed into one tensor (kept in ``cache``, the optimizer's),
    so that both the increment and the read take one op; None where they cannot be packed
    (the counts are then advanced one by one)."""
    values: dict[str, list[float]] | None = {}
    for name in names:  # "step" comes first
        packed = cache.get(("scalars", name))
        if packed is None or not packed.holds(states):
            current = [s[name] for s in states]
            packed = None
            if not torch.compiler.is_compiling() and PackedScalars.packable(current):
                packed = cache[("scalars", name)] = PackedScalars(states, name)
        if name == "step":
            if packed is None:
                torch._foreach_add_([s["step"] for s in states], 1.0)
            else:
                packed.flat.add_(1.0)
        if packed is None:
            values = None
        elif values is not None:
            values[name] = packed.flat.tolist()
    return values


def scale_scalars(
    states: Sequence[dict[str, Any]], name: str, factor: float, cache: dict[Any, Any]
) -> None:
    """``s[name] *= factor`` for every state: one op when exactly these states are packed."""
    packed = cache.get(("scalars", name))
    if packed is not None and packed.holds(states):
        packed.flat.mul_(factor)
    else:
        torch._foreach_mul_([s[name] for s in states], factor)


def fill_scalars(
    states: Sequence[dict[str, Any]], name: str, value: Any, cache: dict[Any, Any]
) -> None:
    """``s[name] ← value`` for every state (:func:`~.views.set_scalars`): one op when exactly
    these states are packed."""
    packed = cache.get(("scalars", name))
    if packed is not None and packed.holds(states):
        packed.flat.copy_(torch.as_tensor(value))
    else:
        set_scalars(states, name, value)


class Chunk:
    """Small parameters whose state tensors are views of one flat buffer per state name.

    Attributes:
        params: the parameters (identity), and ``shapes`` their real-view shapes.
        flats: state name → flat buffer; ``stored`` → the objects kept in the states.
        numel: elements of the chunk (in real-view units).
    """

    def __init__(self, params: Sequence[Tensor], dtype: torch.dtype, device: torch.device) -> None:
        self.params = list(params)
        self.views = [real_view(p) for p in params]
        self.sizes = [v.numel() for v in self.views]
        self.numel = sum(self.sizes)
        self.dtype = dtype
        self.device = device
        self.is_complex = any(p.is_complex() for p in params)
        self.flats: dict[str, Tensor] = {}
        self.stored: dict[str, list[Tensor]] = {}
        self._scratch: dict[str, tuple[Tensor, list[Tensor]]] = {}

    def holds(self, params: Sequence[Tensor]) -> bool:
        """Whether this chunk was made for exactly these parameters."""
        return _same(self.params, params)

    def _shaped(self, flat: Tensor) -> list[Tensor]:
        parts = flat[: self.numel].split(self.sizes)
        return [part.view(v.shape) for part, v in zip(parts, self.views, strict=True)]

    def flat_state(self, states: Sequence[dict[str, Any]], names: Sequence[str]) -> list[Tensor]:
        """The flat buffers of the states ``names``; a state not yet (or no longer) held as our
        views is packed first: its values copied in (created uninitialized if absent)."""
        return [self._flat(states, name) for name in names]

    def _flat(self, states: Sequence[dict[str, Any]], name: str) -> Tensor:
        stored = self.stored.get(name)
        if stored is not None and _same(stored, [s.get(name) for s in states]):
            return self.flats[name]
        flat = torch.zeros(max(self.numel, 2), dtype=self.dtype, device=self.device)
        views = self._shaped(flat)
        if name in states[0]:
            torch._foreach_copy_(views, [real_view(s[name]) for s in states])
        stored = [as_stored(p, v) for p, v in zip(self.params, views, strict=True)]
        for s, v in zip(states, stored, strict=True):
            s[name] = v
        self.flats[name] = flat
        self.stored[name] = stored
        return flat

    def scratch_views(self, scratch: Tensor, role: str) -> list[Tensor]:
        """Views of ``scratch[:numel]`` shaped like the parameters (cached per role)."""
        cached = self._scratch.get(role)
        if cached is None or cached[0] is not scratch:
            cached = self._scratch[role] = (scratch, self._shaped(scratch[: self.numel]))
        return cached[1]


def scratch(
    cache: dict[Any, Any], role: str, numel: int, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """A reusable buffer of at least ``numel`` elements for ``role`` ("param", "grad")."""
    key = ("scratch", role, dtype, device)
    buf = cache.get(key)
    if buf is None or buf.numel() < numel:
        buf = cache[key] = torch.empty(numel, dtype=dtype, device=device)
    return buf
