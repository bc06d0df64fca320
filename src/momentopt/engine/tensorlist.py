"""A list of tensors that answers the tensor methods the rules use, with ``torch._foreach_*``.

Rules are written once against the ``torch.Tensor`` method vocabulary (``mul_``, ``addcmul_``,
``lerp_``, ...). The per-tensor executor hands them real tensors; the multi-tensor executor
hands them a :class:`TensorList`, whose every method is one ``torch._foreach_*`` call over the
whole list. That is how two executors run from one rule text.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Union

import torch
from torch import Tensor

Operand = Union["TensorList", float, int, Tensor]


def _raw(x: Operand) -> Any:
    """An operand as the foreach kernels take it: a list, or a Python number (a tensor
    hyperparameter's value — exact, and so computed as torch computes with the tensor)."""
    if isinstance(x, TensorList):
        return x.tensors
    return x.item() if isinstance(x, Tensor) else x


def _num(x: float | Tensor) -> float:
    """A keyword scalar (``alpha``, ``value``, ``weight``) as a Python number."""
    return x.item() if isinstance(x, Tensor) else x


class TensorList:
    """Tensors of one device and dtype, updated together by multi-tensor kernels."""

    __slots__ = ("tensors",)

    def __init__(self, tensors: Sequence[Tensor]) -> None:
        self.tensors = list(tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def __iter__(self) -> Iterator[Tensor]:
        return iter(self.tensors)

    @property
    def is_sparse(self) -> bool:
        return False

    # out-of-place -------------------------------------------------------------------------
    def neg(self) -> TensorList:
        return TensorList(torch._foreach_neg(self.tensors))

    def sqrt(self) -> TensorList:
        return TensorList(torch._foreach_sqrt(self.tensors))

    def add(self, other: Operand, alpha: float = 1) -> TensorList:
        if isinstance(other, TensorList):
            return TensorList(torch._foreach_add(self.tensors, other.tensors, alpha=_num(alpha)))
        return TensorList(torch._foreach_add(self.tensors, _raw(other) * _num(alpha)))

    def mul(self, other: Operand) -> TensorList:
        return TensorList(torch._foreach_mul(self.tensors, _raw(other)))

    def div(self, other: Operand) -> TensorList:
        return TensorList(torch._foreach_div(self.tensors, _raw(other)))

    def addcmul(self, t1: TensorList, t2: TensorList, value: float = 1) -> TensorList:
        return TensorList(
            torch._foreach_addcmul(self.tensors, t1.tensors, t2.tensors, value=_num(value))
        )

    def clone(self) -> TensorList:
        return TensorList([t.clone() for t in self.tensors])

    def detach(self) -> TensorList:
        return TensorList([t.detach() for t in self.tensors])

    # in place -----------------------------------------------------------------------------
    def neg_(self) -> TensorList:
        torch._foreach_neg_(self.tensors)
        return self

    def sqrt_(self) -> TensorList:
        torch._foreach_sqrt_(self.tensors)
        return self

    def add_(self, other: Operand, alpha: float = 1) -> TensorList:
        if isinstance(other, TensorList):
            torch._foreach_add_(self.tensors, other.tensors, alpha=_num(alpha))
        else:
            torch._foreach_add_(self.tensors, _raw(other) * _num(alpha))
        return self

    def mul_(self, other: Operand) -> TensorList:
        torch._foreach_mul_(self.tensors, _raw(other))
        return self

    def div_(self, other: Operand) -> TensorList:
        torch._foreach_div_(self.tensors, _raw(other))
        return self

    def addcmul_(self, t1: TensorList, t2: TensorList, value: float = 1) -> TensorList:
        torch._foreach_addcmul_(self.tensors, t1.tensors, t2.tensors, value=_num(value))
        return self

    def addcdiv_(self, t1: TensorList, t2: TensorList, value: float = 1) -> TensorList:
        torch._foreach_addcdiv_(self.tensors, t1.tensors, t2.tensors, value=_num(value))
        return self

    def lerp_(self, end: TensorList, weight: float) -> TensorList:
        torch._foreach_lerp_(self.tensors, end.tensors, _num(weight))
        return self

    def copy_(self, src: TensorList) -> TensorList:
        torch._foreach_copy_(self.tensors, src.tensors)
        return self


Tensors = Union[Tensor, TensorList]


def maximum_(out: Tensors, other: Tensors, differentiable: bool = False) -> Tensors:
    """``out ← max(out, other)`` elementwise, in place (torch has no ``Tensor.maximum_``)."""
    if isinstance(out, TensorList):
        torch._foreach_maximum_(out.tensors, other.tensors)
    elif differentiable:
        out.copy_(torch.maximum(out.clone(), other))
    else:
        torch.maximum(out, other, out=out)
    return out
