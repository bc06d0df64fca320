"""The op vocabulary for sparse gradients: a sparse gradient updates only the rows it holds.

A coalesced sparse COO gradient ``g`` is a :class:`SparseGrad`; a dense tensor it updates (a
state, the parameter) is seen through :class:`Rows`. The ops follow torch.optim's sparse
steps operation for operation:

* ``rows.addcmul_(g, g, value=v)`` adds ``v·g²`` at ``g``'s entries only;
* ``rows.sqrt()`` is a sparse value on ``g``'s entries: ``√rows`` there;
* an op with a number operand acts on a sparse value's stored entries (``d.add_(ε)``);
* ``rows.add_(g, alpha=s)`` and ``rows.addcdiv_(g, d, value=s)`` write ``g``'s entries only
  (``rows.addcdiv_(m, d)`` with ``m`` a dense state seen as :class:`Rows`: its values there);
* ``rows.lerp_(g, w)`` moves ``rows`` towards ``g`` at ``g``'s entries only (a lazy average);
* ops among sparse tensors only (a momentum buffer kept as a sparse tensor: ``g.clone()``,
  ``buf.mul_(μ).add_(g, alpha=1 − τ)``, ``g.add(buf, alpha=μ)``, ``g.neg()``) are torch's
  sparse ops.

Any other op on a dense tensor is torch's dense op (a dense momentum buffer met by a sparse
gradient: ``buf.mul_(μ)`` scales all of it, as torch's momentum step does); what torch refuses, it
refuses with its own error. Complex tensors are computed in complex arithmetic, as torch does
for sparse gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .ops import METHODS, Op, out_call


def _number(x: Any) -> Any:
    return x.item() if isinstance(x, Tensor) else x


def _is_number(x: Any) -> bool:
    return not isinstance(x, Tensor | SparseGrad | Rows) or (
        isinstance(x, Tensor) and not x.is_sparse and x.dim() == 0
    )


def _on_entries(like: Tensor, values: Tensor) -> Tensor:
    """A sparse tensor holding ``values`` at the entries of ``like``."""
    return torch.sparse_coo_tensor(like._indices(), values, like.size())


def _values(op_name: str, x: SparseGrad, like: SparseGrad) -> Tensor:
    """``x``'s stored values, which must be at the entries ``like`` holds."""
    a, b = x.tensor._indices(), like.tensor._indices()
    if x is like or a.shape == b.shape and (a.data_ptr() == b.data_ptr() or torch.equal(a, b)):
        return x.values
    raise TypeError(f"{op_name}: the sparse operands must hold the same entries")


def _unsupported(what: str, op_name: str, why: str) -> TypeError:
    return TypeError(f"{what}.{op_name} is not supported for sparse gradients: {why}")


def _sparse(op_name: str, *xs: Any) -> None:
    if not all(isinstance(x, SparseGrad) for x in xs):
        raise _unsupported("Rows", op_name, "its operands must be sparse values")


def _sparse_method(op: Op) -> Callable[..., SparseGrad]:
    def method(self: SparseGrad, *args: Any, **kwargs: Any) -> SparseGrad:
        op.check(args, kwargs)
        keywords = {k: _number(v) for k, v in kwargs.items()}
        if any(
            isinstance(a, Rows) or isinstance(a, Tensor) and not _is_number(a) for a in args
        ):  # a dense operand: torch's own op (which may refuse it)
            result = getattr(self.tensor, op.name)(*map(_plain, args), **keywords)
            return self if op.inplace else _wrap(result, self)
        if any(_is_number(a) for a in args):  # on the stored values
            operands = [_number(a) if _is_number(a) else _values(op.name, a, self) for a in args]
            if op.inplace:
                getattr(self.values, op.name)(*operands, **keywords)
                return self
            return SparseGrad(
                _on_entries(self.tensor, op.compute_outplace(self.values, *operands, **keywords))
            )
        result = getattr(self.tensor, op.name)(*(a.tensor for a in args), **keywords)
        return self if op.inplace else SparseGrad(result)

    method.__name__ = method.__qualname__ = op.name
    method.__doc__ = f"``Tensor.{op.name}`` on sparse values (see the module doc)."
    return method


class SparseGrad:
    """A sparse COO tensor (a coalesced gradient, a sparse state, or a value on a gradient's
    entries) in the op vocabulary.

    Args:
        tensor: the sparse tensor (:attr:`tensor`).
    """

    __slots__ = ("tensor",)
    is_sparse = True

    def __init__(self, tensor: Tensor) -> None:
        self.tensor = tensor

    def __repr__(self) -> str:
        return f"SparseGrad({self.tensor!r})"

    @property
    def values(self) -> Tensor:
        """The stored values (a view: changing it changes :attr:`tensor`)."""
        return self.tensor._values()

    @classmethod
    def __torch_function__(
        cls, func: Any, types: Any, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        op, _, _ = out_call("the sparse path", func, args, kwargs or {}, cls)
        raise _unsupported("torch", op.name, "not defined on sparse values")


class Rows:
    """A dense tensor updated only at the entries of the step's sparse gradient.

    Args:
        tensor: the dense tensor (a state, the parameter), updated in place.
        grad: the step's sparse gradient, whose entries are the rows updated.
    """

    __slots__ = ("grad", "tensor")
    is_sparse = False

    def __init__(self, tensor: Tensor, grad: SparseGrad) -> None:
        self.tensor = tensor
        self.grad = grad

    def __repr__(self) -> str:
        return f"Rows({self.tensor!r})"

    def addcmul_(self, t1: SparseGrad, t2: SparseGrad, value: Any = 1) -> Rows:
        """``rows += value·t1·t2`` at ``t1``'s entries (``t1 is t2``: ``pow(2)``, as torch)."""
        _sparse("addcmul_", t1, t2)
        product = t1.values.pow(2) if t1 is t2 else t1.values * _values("addcmul_", t2, t1)
        if value != 1:
            product = product * _number(value)
        self.tensor.add_(_on_entries(t1.tensor, product))
        return self

    def sqrt(self) -> SparseGrad:
        """``√rows`` at the gradient's entries, a sparse value."""
        masked = self.tensor.sparse_mask(self.grad.tensor)
        masked._values().sqrt_()
        return SparseGrad(masked)

    def add_(self, other: SparseGrad | Rows, alpha: Any = 1) -> Rows:
        """``rows += alpha·other`` (at ``other``'s entries when it is sparse)."""
        self.tensor.add_(_plain(other), alpha=_number(alpha))
        return self

    def addcdiv_(self, t1: SparseGrad | Rows, t2: SparseGrad | Rows, value: Any = 1) -> Rows:
        """``rows += value·t1/t2`` at ``t1``'s entries (``t1``, ``t2`` on the same entries;
        a dense operand seen through :class:`Rows` gives its values at the gradient's)."""
        t1, t2 = self._at_entries(t1), self._at_entries(t2)
        _sparse("addcdiv_", t1, t2)
        quotient = t1.values / _values("addcdiv_", t2, t1)
        self.tensor.add_(_on_entries(t1.tensor, quotient), alpha=_number(value))
        return self

    def lerp_(self, end: SparseGrad, weight: Any) -> Rows:
        """``rows += weight·(end − rows)`` at ``end``'s entries; the other rows keep their
        values (a lazy average, as torch's SparseAdam moves its moments: the step is computed
        on the entries and added)."""
        _sparse("lerp_", end)
        old = self.tensor.sparse_mask(end.tensor)._values()
        step = end.values.sub(old).mul_(_number(weight))
        self.tensor.add_(_on_entries(end.tensor, step))
        return self

    def _at_entries(self, x: Any) -> Any:
        """A dense tensor seen through :class:`Rows`: its values at the gradient's entries,
        as a sparse value; anything else as it is."""
        if isinstance(x, Rows):
            return SparseGrad(x.tensor.sparse_mask(self.grad.tensor))
        return x

    @classmethod
    def __torch_function__(
        cls, func: Any, types: Any, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        op, _, _ = out_call("the sparse path", func, args, kwargs or {}, cls)
        raise _unsupported(
            "torch",
            op.name,
            "a sparse gradient updates only the rows it holds, and this op is not defined that way",
        )


def _plain(x: Any) -> Any:
    return x.tensor if isinstance(x, SparseGrad | Rows) else x


def _wrap(result: Tensor, grad: SparseGrad) -> SparseGrad | Rows:
    return SparseGrad(result) if result.is_sparse else Rows(result, grad)


def _rows_dense(op: Op) -> Callable[..., Any]:
    """Any other op on a dense tensor is torch's dense op (``buf.mul_(μ)`` scales all of a
    dense momentum buffer, as torch's momentum step does); torch refuses what it does not define."""

    def method(self: Rows, *args: Any, **kwargs: Any) -> Any:
        op.check(args, kwargs)
        result = getattr(self.tensor, op.name)(*map(_plain, args), **kwargs)
        return self if op.inplace else _wrap(result, self.grad)

    method.__name__ = method.__qualname__ = op.name
    return method


for _op in METHODS:
    setattr(SparseGrad, _op.name, _sparse_method(_op))
    if _op.name not in Rows.__dict__:
        setattr(Rows, _op.name, _rows_dense(_op))
