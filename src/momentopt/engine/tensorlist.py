"""A list of tensors that answers the op vocabulary with ``torch._foreach_*`` calls.

Rules are written once against the op vocabulary (:data:`~.ops.VOCABULARY`: ``mul_``,
``addcmul_``, ``lerp_``, ...). The per-tensor path hands them real tensors; the multi-tensor
path hands them a :class:`TensorList`, whose every method (generated from the vocabulary) is
one ``torch._foreach_*`` call over the whole list. That is how two paths run from one rule
text.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from ..rules.contract import Scalars
from .ops import METHODS, TENSORS, TENSORWISE, Op, TensorOp, out_call


def _number(x: Any) -> Any:
    """A scalar as the foreach kernels take it: a Python number (a 1-element tensor's value —
    exact, and so computed as torch computes with the tensor)."""
    return x.item() if isinstance(x, Tensor) else x


def _operand(op: Op, i: int, x: Any) -> Any:
    """Operand ``i`` of ``op`` as the foreach kernels take it: a list (of tensors, or of
    numbers for :class:`Scalars`: one per tensor), or a Python number."""
    if isinstance(x, TensorList):
        return x.tensors
    if isinstance(x, Scalars) and op.operands[i] not in TENSORS:
        return list(x.values)
    if op.operands[i] in TENSORS or isinstance(x, Tensor) and x.numel() != 1:
        raise TypeError(
            f"TensorList.{op.name}: operand {i + 1} must be a TensorList"
            f"{'' if op.operands[i] in TENSORS else ', a number or a 1-element tensor'}"
            f", got {type(x).__name__}"
        )
    return _number(x)


def _run(op: Op, tensors: list[Tensor], args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    """``op`` over ``tensors``: the foreach function's result (or None, in place)."""
    op.check(args, kwargs)
    if any(isinstance(v, Scalars) for v in kwargs.values()):
        return _run_by_keywords(op, tensors, args, kwargs)
    operands = [_operand(op, i, a) for i, a in enumerate(args)]
    keywords = {k: _number(v) for k, v in kwargs.items()}
    if op.foreach is None:  # the method of each tensor, with its own operands
        return [
            getattr(t, op.name)(*(x[k] if isinstance(x, list) else x for x in operands), **keywords)
            for k, t in enumerate(tensors)
        ]
    if keywords and tensors and any(not isinstance(x, list) for x in operands):
        # a number with keywords (``add(s, alpha=a)``): torch rounds the number to the
        # tensors' dtype and computes s·a + x in one rounding; the foreach overload that
        # takes it as a tensor does the same
        like = tensors[0]
        operands = [
            x if isinstance(x, list) else torch.tensor(x, dtype=like.dtype, device=like.device)
            for x in operands
        ]
    return getattr(torch, op.foreach)(tensors, *operands, **keywords)


def _run_by_keywords(
    op: Op, tensors: list[Tensor], args: Sequence[Any], kwargs: dict[str, Any]
) -> Any:
    """``op`` with per-tensor keywords (``alpha=`` a :class:`Scalars`): the foreach kernels
    take one keyword value, so one call per set of tensors sharing their values — each tensor
    computed by the op the per-tensor path runs, in one rounding."""
    runs: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for i in range(len(tensors)):
        runs[tuple(_at(v, i) for v in kwargs.values())].append(i)
    results: list[Any] = [None] * len(tensors)
    for values, members in runs.items():
        if len(members) == 1:  # the tensor's own op (what the foreach kernel would loop over)
            (i,) = members
            own = [_at_list(a, i) for a in args]
            results[i] = getattr(tensors[i], op.name)(
                *own, **dict(zip(kwargs, values, strict=True))
            )
            continue
        result = _run(
            op,
            [tensors[i] for i in members],
            [_pick(a, members) for a in args],
            dict(zip(kwargs, values, strict=True)),
        )
        for k, i in enumerate(members if result is not None else ()):
            results[i] = result[k]
    return None if op.inplace else results


def _at(x: Any, i: int) -> Any:
    return x.values[i] if isinstance(x, Scalars) else x


def _pick(x: Any, members: list[int]) -> Any:
    """Operand ``x`` restricted to the tensors ``members``."""
    if isinstance(x, TensorList):
        return TensorList([x.tensors[i] for i in members])
    if isinstance(x, Scalars):
        return Scalars([x.values[i] for i in members])
    return x


def _tensorwise(op: TensorOp) -> Callable[..., Any]:
    """``op`` of each tensor: a :class:`TensorList` of tensors, or :class:`Scalars`."""

    def method(self: TensorList, *args: Any, **kwargs: Any) -> Any:
        if op.foreach is not None and not kwargs and len(args) <= 1:
            values: list[Any] = getattr(torch, op.foreach)(self.tensors, *args)
        elif op.name == "item" and self.tensors:  # one transfer for all (stack is exact)
            values = torch.stack(self.tensors).tolist()
        else:
            values = [
                getattr(t, op.name)(*(_at_list(a, i) for a in args), **kwargs)
                for i, t in enumerate(self.tensors)
            ]
        return Scalars(values) if op.number else TensorList(values)

    method.__name__ = method.__qualname__ = op.name
    method.__doc__ = f"``Tensor.{op.name}`` of each tensor ({op.what})."
    return method


def _at_list(x: Any, i: int) -> Any:
    if isinstance(x, TensorList):
        return x.tensors[i]
    return _at(x, i)


def _method(op: Op) -> Callable[..., TensorList]:
    def method(self: TensorList, *args: Any, **kwargs: Any) -> TensorList:
        result = _run(op, self.tensors, args, kwargs)
        return self if op.inplace else TensorList(result)

    method.__name__ = method.__qualname__ = op.name
    method.__doc__ = (
        f"``Tensor.{op.name}`` of every tensor, as ``torch.{op.foreach}``."
        if op.foreach
        else f"``Tensor.{op.name}`` of every tensor."
    )
    return method


class TensorList:
    """Tensors of one device and dtype, updated together by multi-tensor kernels.

    Args:
        tensors: the tensors (kept in a new list, :attr:`tensors`).

    Every op of :data:`~.ops.VOCABULARY` is a method; operands are :class:`TensorList` s of
    the same length, or (where the op takes one) a Python number or a 1-element tensor, used
    as its Python value, or :class:`Scalars` (one number per tensor).
    ``torch.maximum(a, b, out=a)`` runs ``torch._foreach_maximum_``. The tensorwise ops
    (:data:`~.ops.TENSORWISE`) give a :class:`TensorList` or :class:`Scalars`.
    """

    __slots__ = ("tensors",)

    def __init__(self, tensors: Sequence[Tensor]) -> None:
        self.tensors = list(tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def __iter__(self) -> Iterator[Tensor]:
        return iter(self.tensors)

    @property
    def is_sparse(self) -> bool:
        """False: the multi-tensor path runs dense tensors only."""
        return False

    @property
    def dtype(self) -> torch.dtype:
        """The tensors' dtype (a bucket has one)."""
        return self.tensors[0].dtype

    @classmethod
    def __torch_function__(
        cls, func: Any, types: Any, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        op, out, operands = out_call("the multi-tensor path", func, args, kwargs or {}, cls)
        _run(op, out.tensors, operands, {})
        return out


for _op in METHODS:
    setattr(TensorList, _op.name, _method(_op))
for _tensor_op in TENSORWISE:
    setattr(TensorList, _tensor_op.name, _tensorwise(_tensor_op))
