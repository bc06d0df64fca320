"""The op vocabulary: every tensor operation a rule may use, in one table.

Rules are written with ``torch.Tensor`` methods (``mul_``, ``addcmul_``, ``lerp_``, ...) and
``torch.maximum(a, b, out=a)``. The per-tensor path hands them real tensors; every other
implementation of the vocabulary is generated from :data:`VOCABULARY`:

* :class:`~.tensorlist.TensorList` — each op one ``torch._foreach_*`` call over a bucket;
* :class:`~.tape.TapeTensor` — each op recorded on a tape, and written into the source of the
  compiled kernel by :func:`~.tape.kernel_source`;
* :class:`~.autograd_safe.AutogradSafe` — each op computed out of place, under autograd;
* :class:`~.sparse_rows.SparseGrad` and :class:`~.sparse_rows.Rows` — a sparse gradient
  updates only the rows it holds.

Adding an op is one entry here; ``tests/test_ops.py`` runs every entry on every
implementation and compares the results with the plain tensor op. Ops of each tensor as a
whole (norms, means along dims, matrix products, per-tensor numbers) are a second, smaller
table, :data:`TENSORWISE`: the compiled path does not record them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


class Operand(enum.Enum):
    """What an operand of an op may be."""

    TENSOR = "a tensor"
    EITHER = "a tensor or a number"  # a number: a Python number or a 0-d tensor
    MASK = "a boolean tensor"  # a comparison's result (``g.lt(0)``)
    NUMBER = "a number"  # a Python number or a 0-d tensor only (``masked_fill_``'s value)


TENSOR = Operand.TENSOR
EITHER = Operand.EITHER
MASK = Operand.MASK
NUMBER = Operand.NUMBER
TENSORS = (TENSOR, MASK)
"""The operand kinds that are tensors of the op's shape (never a number)."""

Form = Callable[..., Any]
"""``form(self, *operands, **keywords)``: the op's value in tensor arithmetic, written with
out-of-place tensor methods, for operands whose scalars are 0-d tensors; None where the op's
own method takes them as they are. Applied to tensors (:class:`~.autograd_safe.AutogradSafe`)
and to source expressions (:func:`~.tape.kernel_source`), so both compute the same thing."""


def _add(self: Any, other: Any, alpha: Any = None) -> Any:
    """``self + alpha·other`` in one rounding, as torch's ``add`` computes it (``addcmul``
    with a 0-d factor; torch.optim does the same for a tensor ``lr``)."""
    return None if alpha is None else self.addcmul(other, alpha)


def _addcmul(self: Any, t1: Any, t2: Any, value: Any = None) -> Any:
    """``self + (value·t1)·t2``, in torch's order of operations."""
    return None if value is None else self.addcmul(value * t1, t2)


def _addcdiv(self: Any, t1: Any, t2: Any, value: Any = None) -> Any:
    """``self + (value·t1)/t2``, in torch's order of operations."""
    return None if value is None else self.add((value * t1) / t2)


def _lerp(self: Any, end: Any, weight: Any) -> Any:
    """torch's ``lerp`` takes a weight tensor of ``self``'s dtype only (a number it casts)."""
    return self.lerp(end, weight.to(self.dtype))


def _copy(self: Tensor, src: Tensor) -> Tensor:
    """The out-of-place ``copy_``: a new tensor like ``self`` holding ``src``; under autograd
    the old value's gradient is zero (not none), as after torch's in-place ``copy_``."""
    return self.clone().copy_(src)


def _zero(self: Tensor) -> Tensor:
    """The out-of-place ``zero_``: zeros like ``self``; under autograd with ``self``'s history
    (a zero gradient), as after torch's in-place ``zero_``."""
    return self.clone().zero_()


@dataclass(frozen=True)
class Op:
    """One op of the vocabulary.

    Attributes:
        name: the ``torch.Tensor`` method; with ``out``, the torch function.
        operands: what each operand after ``self`` may be.
        keywords: the keyword scalars, with torch's defaults.
        foreach: the ``torch._foreach_*`` function that runs the op over lists, or None
            where a list comprehension of the method does (``clone``).
        form: the op in tensor arithmetic for scalars that are 0-d tensors (:data:`Form`):
            the compiled kernel's expression where a scalar is a slot, AutogradSafe's where
            a scalar is a tensor. Without one (or where it gives None), the op's own method.
        out: the op is ``torch.<name>(self, *operands, out=self)`` (in place).
        outplace: the out-of-place version of an in-place op, when it is not the method
            named without the trailing underscore.
    """

    name: str
    operands: tuple[Operand, ...] = ()
    keywords: tuple[tuple[str, float], ...] = ()
    foreach: str | None = None
    form: Form | None = None
    out: bool = False
    outplace: Callable[..., Tensor] | None = None

    @property
    def inplace(self) -> bool:
        """Whether the op changes ``self`` (and returns it)."""
        return self.out or self.name.endswith("_")

    def check(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise TypeError unless ``args`` and ``kwargs`` are the op's operands and keywords."""
        unknown = sorted(set(kwargs) - {k for k, _ in self.keywords})
        if len(args) != len(self.operands) or unknown:
            raise TypeError(
                f"{self.name}() takes {len(self.operands)} operand(s) and the keywords "
                f"{[k for k, _ in self.keywords]}; got {len(args)} operand(s) and {sorted(kwargs)}"
            )

    def compute_outplace(self, tensor: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        """The op's value on plain tensors, out of place (``self`` is left as it is)."""
        if self.outplace is not None:
            return self.outplace(tensor, *args, **kwargs)
        return getattr(tensor, self.name.rstrip("_"))(*args, **kwargs)


VOCABULARY: tuple[Op, ...] = (
    Op("neg", foreach="_foreach_neg"),
    Op("sqrt", foreach="_foreach_sqrt"),
    Op("abs", foreach="_foreach_abs"),
    Op("add", (EITHER,), (("alpha", 1),), "_foreach_add", _add),
    Op("mul", (EITHER,), foreach="_foreach_mul"),
    Op("div", (EITHER,), foreach="_foreach_div"),
    Op("addcmul", (TENSOR, TENSOR), (("value", 1),), "_foreach_addcmul", _addcmul),
    Op("clone"),
    Op("neg_", foreach="_foreach_neg_"),
    Op("sqrt_", foreach="_foreach_sqrt_"),
    Op("add_", (EITHER,), (("alpha", 1),), "_foreach_add_", _add),
    Op("mul_", (EITHER,), foreach="_foreach_mul_"),
    Op("div_", (EITHER,), foreach="_foreach_div_"),
    Op("addcmul_", (TENSOR, TENSOR), (("value", 1),), "_foreach_addcmul_", _addcmul),
    Op("addcdiv_", (TENSOR, TENSOR), (("value", 1),), "_foreach_addcdiv_", _addcdiv),
    Op("lerp_", (TENSOR, EITHER), foreach="_foreach_lerp_", form=_lerp),
    Op("lerp", (TENSOR, EITHER), foreach="_foreach_lerp", form=_lerp),
    Op("clamp_min_", (EITHER,), foreach="_foreach_clamp_min_"),
    Op("reciprocal_", foreach="_foreach_reciprocal_"),
    Op("copy_", (TENSOR,), foreach="_foreach_copy_", outplace=_copy),
    Op("maximum", (TENSOR,), foreach="_foreach_maximum_", out=True),
    Op("sign", foreach="_foreach_sign"),
    Op("gt", (EITHER,)),
    Op("lt", (EITHER,)),
    Op("eq", (EITHER,)),
    Op("masked_fill_", (MASK, NUMBER)),
    Op("clamp_", (NUMBER, NUMBER)),
    Op("zero_", foreach="_foreach_zero_", outplace=_zero),
)
"""Every op a rule may use; ``maximum`` is ``torch.maximum(a, b, out=a)``. The comparisons
(``gt``, ``lt``, ``eq``) give boolean masks, the operand :data:`MASK` of ``masked_fill_``;
``x.zero_().masked_fill_(mask, 1)`` is a mask as numbers."""

BY_NAME: dict[str, Op] = {op.name: op for op in VOCABULARY}
METHODS: tuple[Op, ...] = tuple(op for op in VOCABULARY if not op.out)
"""The ops called as tensor methods (the others are torch functions writing into ``out``)."""


@dataclass(frozen=True)
class TensorOp:
    """A tensorwise op: of each tensor as a whole, not elementwise (a reduction over a tensor
    or over some of its dimensions, a matrix product, a number the tensor gives).

    On one tensor it is torch's method; on a bucket (:class:`~.tensorlist.TensorList`) it is
    the method of each tensor, or ``foreach`` where that computes it; a number is one per
    tensor (:class:`~momentopt.rules.contract.Scalars`). The compiled path records none of
    them: a step that calls one runs multi-tensor, and the plan says why (``what``).

    Attributes:
        name: the ``torch.Tensor`` method (``__matmul__`` is ``a @ b``).
        number: the op gives a number (a Python number; on a bucket, Scalars) rather than
            a tensor.
        foreach: the ``torch._foreach_*`` function computing it for a list, when called with
            no other operand than ``p`` (``x.norm()``, ``x.norm(2)``).
        what: what it computes, in words (the plan's reason for not compiling).
    """

    name: str
    number: bool = False
    foreach: str | None = None
    what: str = ""


TENSORWISE: tuple[TensorOp, ...] = (
    TensorOp("norm", foreach="_foreach_norm", what="a norm of each tensor or along its dims"),
    TensorOp("mean", what="a mean of a tensor or along its dims"),
    TensorOp("__matmul__", what="a matrix product"),
    TensorOp("item", number=True, what="a tensor's value as a number"),
    TensorOp("numel", number=True, what="a tensor's number of elements"),
    TensorOp("size", number=True, what="a tensor's size along a dim"),
    TensorOp("flatten", what="a tensor as a vector"),
    TensorOp("sum", what="a sum over a tensor"),
    TensorOp("__getitem__", what="entries of a tensor picked by an index or a slice"),
)
"""The tensorwise ops a rule may use (on the paths that run them: per-tensor, multi-tensor,
and under autograd)."""


def out_call(
    who: str, func: Any, args: Sequence[Any], kwargs: Mapping[str, Any], kind: type
) -> tuple[Op, Any, tuple[Any, ...]]:
    """The op, its ``self`` and its operands of a torch function call that reached ``kind``'s
    ``__torch_function__``: ``torch.maximum(a, b, out=a)``, ``a`` of type ``kind``.

    Raises TypeError naming the function for any other call (``who`` says which
    implementation could not run it).
    """
    for op in VOCABULARY:
        if op.out and func is getattr(torch, op.name):
            out = kwargs.get("out")
            if isinstance(out, kind) and len(args) == 1 + len(op.operands) and args[0] is out:
                op.check(args[1:], {k: v for k, v in kwargs.items() if k != "out"})
                return op, out, tuple(args[1:])
    name = getattr(func, "__name__", func)
    raise TypeError(
        f"{who} cannot run torch.{name} as called here (of torch's functions, the "
        "op vocabulary has torch.maximum(a, b, out=a) only: momentopt.engine.ops)"
    )
