"""The engine's implementations of the rules' :class:`~momentopt.rules.contract.UpdateView`.

Each execution path hands the rules a view of the tensors it runs:

* :class:`TensorsView` — one tensor (per-tensor path) or a :class:`~.tensorlist.TensorList`
  of a bucket (multi-tensor path). Complex tensors are seen as real views, as torch.optim
  does, so a rule never needs to know about complex numbers.
* :class:`AutogradView` — one tensor under autograd (``differentiable=True``): state and
  intermediate values are :class:`~.autograd_safe.AutogradSafe`, so no rule needs to avoid
  in-place changes of tensors autograd saved.
* :class:`SparseView` — one parameter with a sparse gradient, which updates only its rows
  (:mod:`.sparse_rows`); complex tensors are computed in complex arithmetic, as torch does.
* :class:`TapeView` — stand-ins that record the step for compiling (:mod:`.tape`).

Every view also does step 4, the update, with :meth:`TensorsView.add_to_param`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .autograd_safe import AutogradSafe
from .sparse_rows import Rows, SparseGrad
from .tape import CannotRecord, Tape, TapeTensor
from .tensorlist import TensorList

Observer = Callable[..., None]


def real_view(t: Tensor) -> Tensor:
    """``t`` as real numbers: ``view_as_real`` of a dense complex tensor, else ``t``."""
    return torch.view_as_real(t) if t.is_complex() and not t.is_sparse else t


def real_views(tensors: Sequence[Tensor], is_complex: bool = True) -> list[Tensor]:
    """Real views of ``tensors``; the tensors themselves when the caller knows none is
    complex (``is_complex=False`` skips the per-tensor check)."""
    return [real_view(t) for t in tensors] if is_complex else list(tensors)


def set_scalars(states: Sequence[dict[str, Any]], name: str, value: Any) -> None:
    """``s[name] ← value`` in place for every state, as torch's
    ``s.copy_(torch.as_tensor(value))`` (a number is first a tensor of the default dtype)."""
    targets = [s[name] for s in states]
    torch._foreach_copy_(targets, [torch.as_tensor(value)] * len(targets))


def as_stored(param: Tensor, real: Tensor) -> Tensor:
    """A real-view state tensor as kept in the state dict: complex for a complex param."""
    return torch.view_as_complex(real) if param.is_complex() and not real.is_sparse else real


class TensorsView:
    """One parameter's or one bucket's tensors, with uniform hyperparameters and ``t``.

    Attributes:
        group: the param group's hyperparameters.
        t: the step count after this step's increment (the same for every tensor).
        param, grad: the parameters and their gradients (real views).
        observer: called as ``observer(view, g, denom, direction, lr)`` just before the
            update, to read (never change) the step's pieces; None when nobody watches.
    """

    def __init__(
        self,
        params: Sequence[Tensor],
        grads: Sequence[Tensor],
        states: Sequence[dict[str, Any]],
        *,
        as_list: bool,
        t: float,
        group: Any,
        is_complex: bool = True,
        observer: Observer | None = None,
    ) -> None:
        """``is_complex=False``: the caller knows no tensor is complex (no real-view check)."""
        self.params = list(params)
        self._states = list(states)
        self._as_list = as_list
        self._complex = is_complex
        self.t = t
        self.group = group
        self.observer = observer
        self.param = self._pack(real_views(self.params, is_complex))
        self.grad = self._pack(real_views(grads, is_complex))

    def _pack(self, tensors: list[Tensor]) -> Any:
        return TensorList(tensors) if self._as_list else tensors[0]

    def __len__(self) -> int:
        return len(self.params)

    def has(self, name: str) -> bool:
        return name in self._states[0]  # a bucket holds tensors that all have it or none

    def state(self, name: str) -> Any:
        return self._pack(real_views([s[name] for s in self._states], self._complex))

    def start(self, name: str, value: Any) -> Any:
        copy = value.clone()
        tensors = copy.tensors if isinstance(copy, TensorList) else [copy]
        for p, s, t in zip(self.params, self._states, tensors, strict=True):
            s[name] = as_stored(p, t)
        return copy

    def scale_scalar_(self, name: str, factor: Any) -> float:
        torch._foreach_mul_([s[name] for s in self._states], factor)
        return self._states[0][name].item()

    def scalar(self, name: str) -> float:
        return self._states[0][name].item()  # a bucket's tensors share their scalar states

    def set_scalar(self, name: str, value: Any) -> None:
        set_scalars(self._states, name, value)

    def map_matrices(self, fn: Callable[[Tensor], Tensor], x: Any) -> Any:
        """``fn`` of ``x`` (one matrix), or of a bucket's matrices stacked by shape: one
        call per shape (a shape held by one tensor: that tensor, unstacked)."""
        if not isinstance(x, TensorList):
            return fn(x)
        by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, t in enumerate(x.tensors):
            by_shape[tuple(t.shape)].append(i)
        out: list[Tensor] = [x.tensors[0]] * len(x.tensors)
        for members in by_shape.values():
            if len(members) == 1:
                out[members[0]] = fn(x.tensors[members[0]])
                continue
            batch = fn(torch.stack([x.tensors[i] for i in members]))
            for k, i in enumerate(members):
                out[i] = batch[k]
        return TensorList(out)

    def add_to_param(self, tensor: Any, denom: Any, scale: Any) -> None:
        """Step 4 for one term: ``w ← w + scale · tensor / denom`` (``denom`` None: 1)."""
        if denom is None:
            self.param.add_(tensor, alpha=scale)
        else:
            self.param.addcdiv_(tensor, denom, value=scale)


class AutogradView(TensorsView):
    """One tensor under autograd: the parameter is updated in place (as torch does), every
    other value is :class:`AutogradSafe`; :meth:`commit` stores the new state tensors."""

    def __init__(
        self,
        param: Tensor,
        grad: Tensor,
        state: dict[str, Any],
        *,
        t: float,
        group: Any,
        observer: Observer | None = None,
    ) -> None:
        super().__init__(
            [param], [grad], [state], as_list=False, t=t, group=group, observer=observer
        )
        self.grad = AutogradSafe(self.grad)
        self._safe: dict[str, AutogradSafe] = {}

    def has(self, name: str) -> bool:
        return name in self._safe or name in self._states[0]

    def state(self, name: str) -> AutogradSafe:
        if name not in self._safe:
            self._safe[name] = AutogradSafe(real_view(self._states[0][name]))
        return self._safe[name]

    def start(self, name: str, value: Any) -> AutogradSafe:
        # torch's buffers start as a detached copy: the first value carries no history
        tensor = value.tensor if isinstance(value, AutogradSafe) else value
        self._safe[name] = AutogradSafe(tensor.detach().clone())
        return self._safe[name]

    def map_matrices(self, fn: Callable[[Tensor], Tensor], x: Any) -> AutogradSafe:
        return AutogradSafe(fn(AutogradSafe.unwrap(x)))

    def scale_scalar_(self, name: str, factor: Any) -> Tensor:
        """The scaled scalar as a float64 tensor that carries autograd's history (the same
        number the other paths compute from ``.item()``)."""
        state = self._states[0]
        state[name] = state[name] * factor
        return state[name].to(torch.float64)

    def set_scalar(self, name: str, value: Any) -> None:
        """In place, as torch does: the new value is a copy, and the state keeps its
        autograd history (its gradient with respect to the old value is zero)."""
        self._states[0][name].copy_(torch.as_tensor(value))

    def add_to_param(self, tensor: Any, denom: Any, scale: Any) -> None:
        tensor, denom = AutogradSafe.unwrap(tensor), AutogradSafe.unwrap(denom)
        if isinstance(scale, Tensor):  # a tensor scale keeps its gradient
            self.param.add_((tensor if denom is None else tensor / denom) * scale)
        else:  # the normal step's op, so its numbers
            super().add_to_param(tensor, denom, scale)

    def commit(self) -> None:
        """Store the state tensors the step computed (autograd's history included)."""
        param, state = self.params[0], self._states[0]
        for name, safe in self._safe.items():
            state[name] = as_stored(param, safe.tensor)


class SparseView(TensorsView):
    """One parameter with a sparse gradient: the gradient updates only its rows."""

    def __init__(
        self,
        param: Tensor,
        grad: Tensor,
        state: dict[str, Any],
        *,
        t: float,
        group: Any,
        observer: Observer | None = None,
    ) -> None:
        super().__init__(
            [param],
            [grad],
            [state],
            as_list=False,
            t=t,
            group=group,
            is_complex=False,
            observer=observer,
        )
        self.grad = SparseGrad(grad.coalesce())
        self.param = Rows(param, self.grad)

    def state(self, name: str) -> Any:
        value = self._states[0][name]
        return SparseGrad(value) if value.is_sparse else Rows(value, self.grad)

    def start(self, name: str, value: Any) -> Any:
        copy = value.clone()
        self._states[0][name] = copy.tensor
        return copy


class TapeView:
    """A view whose tensors are tape variables (:mod:`.tape`): running the rules on it
    records the step.

    Scalar state (a running product) is read from the real states; its update is computed
    as the other paths compute it but applied only by :meth:`commit`, after the compiled
    step ran, so a failed compile leaves the states as they were. Tensor state is recorded.
    """

    observer = None

    def __init__(
        self,
        tape: Tape,
        states: Sequence[dict[str, Any]],
        *,
        t: float,
        group: Any,
        params: Sequence[Tensor],
    ) -> None:
        self.params = list(params)
        self._states = list(states)
        self.t = t
        self.group = group
        self.tape = tape
        self.param = tape.input("param")
        self.grad = tape.input("grad")
        self._vars: dict[str, TapeTensor] = {}
        self.pending: list[tuple[str, str, Any]] = []

    def has(self, name: str) -> bool:
        return name in self._states[0] or name in self._vars

    def state(self, name: str) -> TapeTensor:
        if name not in self._vars:
            self._vars[name] = self.tape.input(name)
        return self._vars[name]

    def start(self, name: str, value: TapeTensor) -> TapeTensor:
        copy = value.clone()
        self.tape.outputs[name] = copy.var
        self._vars[name] = copy
        return copy

    def scale_scalar_(self, name: str, factor: Any) -> float:
        self.pending.append(("scale_scalar_", name, factor))
        return (self._states[0][name] * factor).item()

    def scalar(self, name: str) -> float:
        return self._states[0][name].item()

    def set_scalar(self, name: str, value: Any) -> None:
        self.pending.append(("set_scalar", name, value))

    add_to_param = TensorsView.add_to_param

    def map_matrices(self, fn: Callable[[Tensor], Tensor], x: Any) -> Any:
        raise CannotRecord(
            f"the step uses {getattr(fn, '__name__', 'a function')} (a function of matrices), "
            "which the compiled path does not record"
        )

    def commit(self, batch: Any) -> None:
        """Apply the deferred scalar-state updates to ``batch``'s states (its
        ``scale_scalar_`` and ``set_scalar``)."""
        for method, name, value in self.pending:
            getattr(batch, method)(name, value)
        self.pending.clear()
