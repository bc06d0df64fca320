"""Per-parameter state, derived from the rules' declarations (:class:`StateSpec`).

From a recipe's declarations this module gives: which state a group keeps, in which key
order (the state_dict layout), what is created before the first step and what during it,
which entries are scalars, and the state itself for a new parameter. Loading, bucketing,
scalar packing and the fused paths all read it from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..rules.contract import Start, StateSpec

STEP = StateSpec("step", Start.ZEROS, scalar=True, signed=False)
"""The step count ``t``, kept per parameter by recipes that count steps."""


def scalar_dtype(fused: bool = False) -> torch.dtype:
    """dtype of scalar states: float32, or float64 under a float64 default dtype (float32
    under ``fused=True``), as torch.optim keeps its ``step``."""
    if fused:
        return torch.float32
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


@dataclass(frozen=True)
class StateLayout:
    """A recipe's state: the declarations in state_dict key order.

    Attributes:
        specs: every declaration, ``step`` first when steps are counted, then in ``order``
            (names listed there), then as the rules declare them.
        fill_from_defaults: :attr:`Start.FILL` values are read from the optimizer's
            defaults rather than the group (as one torch.optim class does).
    """

    specs: tuple[StateSpec, ...]
    fill_from_defaults: bool = False

    @classmethod
    def of(
        cls,
        declared: Sequence[StateSpec],
        *,
        counts_steps: bool,
        order: Sequence[str] = (),
        fill_from_defaults: bool = False,
    ) -> StateLayout:
        names = [s.name for s in declared]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise TypeError(f"two rules of one recipe declare the state {repeated}")
        rank = {name: i for i, name in enumerate(order)}
        specs = sorted(declared, key=lambda s: rank.get(s.name, len(rank)))  # stable
        return cls(((STEP,) if counts_steps else ()) + tuple(specs), fill_from_defaults)

    @property
    def scalar_names(self) -> tuple[str, ...]:
        """Names of the scalar states (``step`` first)."""
        return tuple(s.name for s in self.specs if s.scalar)

    def kept(
        self, group: Mapping[str, Any], shape: Sequence[int] | None = None
    ) -> tuple[StateSpec, ...]:
        """The declarations that exist under ``group``'s hyperparameters (for a parameter of
        ``shape``, if given)."""
        return tuple(s for s in self.specs if s.kept(group) and (shape is None or s.applies(shape)))

    def by_shape(self, group: Mapping[str, Any]) -> tuple[StateSpec, ...]:
        """The declarations under ``group`` kept for some parameter shapes only (parameters
        that differ in them step in separate buckets)."""
        return tuple(s for s in self.kept(group) if s.kept_for is not None)

    def shape_of(
        self, name: str, shape: Sequence[int], group: Mapping[str, Any]
    ) -> tuple[int, ...]:
        """The shape of state ``name`` for a parameter of ``shape`` in ``group``."""
        return next(s for s in self.specs if s.name == name).shape_for(shape, group)

    def created_in_step(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        """Names of the states created during a step (:attr:`Start.FIRST_VALUE`)."""
        return tuple(s.name for s in self.kept(group) if s.start is Start.FIRST_VALUE)

    def keeps_nothing(self, group: Mapping[str, Any]) -> bool:
        return not self.kept(group)

    def new_state(
        self,
        param: Tensor,
        group: Mapping[str, Any],
        defaults: Mapping[str, Any],
        dtype: torch.dtype,
        device: torch.device | str,
    ) -> dict[str, Any]:
        """The state of ``param`` before its first step; scalars of ``dtype`` on ``device``."""
        state: dict[str, Any] = {}
        for spec in self.kept(group, param.shape):
            if spec.start is Start.FIRST_VALUE:
                continue
            if spec.start is Start.PARAM:  # (a copy of the parameter, in the state's shape)
                if spec.every is not None:  # (of the entries it keeps)
                    sample = param.detach().flatten()[:: int(spec.every(group))]
                    state[spec.name] = sample.clone()
                    continue
                copy = param.detach().clone(memory_format=torch.preserve_format)
                shaped = spec.shape is not None
                state[spec.name] = (
                    copy.reshape(spec.shape_for(param.shape, group)) if shaped else copy
                )
                continue
            if spec.scalar:
                value = 1.0 if spec.start is Start.ONE else 0.0
                if spec.start is Start.FILL:
                    value = self._fill_value(spec, group, defaults)
                state[spec.name] = torch.full((), value, dtype=dtype, device=device)
                continue
            if spec.shape is None and spec.every is None:
                tensor = torch.zeros_like(param, memory_format=torch.preserve_format)
            else:
                tensor = param.new_zeros(spec.shape_for(param.shape, group))
            if spec.start is Start.FILL:
                fill = self._fill_value(spec, group, defaults)
                if fill != 0:
                    (torch.view_as_real(tensor) if tensor.is_complex() else tensor).fill_(fill)
            state[spec.name] = tensor
        return state

    def _fill_value(
        self, spec: StateSpec, group: Mapping[str, Any], defaults: Mapping[str, Any]
    ) -> Any:
        """The value a :attr:`Start.FILL` state starts at: the hyperparameter's (a tensor's as
        its number: the state does not take the hyperparameter's autograd history)."""
        fill = (defaults if self.fill_from_defaults else group).get(spec.value, 0.0)
        return fill.item() if isinstance(fill, Tensor) else fill

    def expected(
        self, group: Mapping[str, Any], shape: Sequence[int] | None = None
    ) -> tuple[set[str], set[str]]:
        """The (required, optional) state keys of a parameter (of ``shape``) that has stepped
        under ``group``: optional ones are created during a step."""
        kept = self.kept(group, shape)
        optional = {s.name for s in kept if s.start is Start.FIRST_VALUE}
        return {s.name for s in kept} - optional, optional
