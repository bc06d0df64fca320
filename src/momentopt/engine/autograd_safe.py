"""The op vocabulary under autograd: every op computed out of place.

torch's autograd saves some inputs or outputs of an op for the backward pass (``sqrt`` saves
its result, ``mul`` its operands); changing one of them in place afterwards breaks the
backward pass. Rules are written with in-place ops, as torch.optim's step is. Under
``differentiable=True`` the per-tensor path hands them :class:`AutogradSafe` values instead:
each op (generated from :data:`~.ops.VOCABULARY`) runs out of place, and an in-place op
rebinds the value to the result, so the rule sees the same numbers and autograd sees a chain
of new tensors. No rule needs a ``.clone()`` for autograd's sake.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .ops import EITHER, METHODS, TENSORWISE, Op, TensorOp, out_call


def _plain(x: Any) -> Any:
    return x.tensor if isinstance(x, AutogradSafe) else x


def _is_scalar(x: Any) -> bool:
    return not isinstance(x, Tensor) or x.dim() == 0


def _operand(x: Any) -> Any:
    """An operand as the op reads it: a plain tensor (the parameter, which the step updates
    in place after this op) is read through a copy, as torch's ``param.clone()`` does, since
    autograd may save the operand for the backward pass (``g + λ·w`` with a tensor ``λ``
    that requires grad saves ``w``)."""
    if isinstance(x, AutogradSafe):
        return x.tensor
    return x.clone() if isinstance(x, Tensor) and not _is_scalar(x) else x


def compute(op: Op, tensor: Tensor, args: Sequence[Any], kwargs: dict[str, Any]) -> Tensor:
    """The value of ``op`` on ``tensor``, out of place (``tensor`` is left as it is).

    Operands may be :class:`AutogradSafe`, tensors or numbers. Where a scalar (a keyword,
    or a number operand) is a tensor — one that may require grad, such as a tensor ``lr`` —
    the op's form (:attr:`~.ops.Op.form`) computes it in tensor arithmetic, with every scalar
    a 0-d tensor of ``tensor``'s dtype, so its gradient flows (torch's ``alpha=`` and
    ``value=`` take numbers only). torch rounds a number to that dtype too, so the value is
    the op's own for float32 and float64.
    """
    op.check(args, kwargs)
    operands = [_operand(a) for a in args]
    scalar = [
        kind is EITHER and _is_scalar(a) for kind, a in zip(op.operands, operands, strict=False)
    ]
    scalars = [*kwargs.values(), *(a for a, s in zip(operands, scalar, strict=False) if s)]
    if op.form is not None and any(isinstance(x, Tensor) for x in scalars):

        def as_0d(x: Any) -> Tensor:
            return torch.as_tensor(x, dtype=tensor.dtype, device=tensor.device)

        value = op.form(
            tensor,
            *[as_0d(a) if s else a for a, s in zip(operands, scalar, strict=False)],
            **{k: as_0d(v) for k, v in kwargs.items()},
        )
        if value is not None:
            return value
    return op.compute_outplace(tensor, *operands, **kwargs)


def _method(op: Op) -> Callable[..., AutogradSafe]:
    def method(self: AutogradSafe, *args: Any, **kwargs: Any) -> AutogradSafe:
        result = compute(op, self.tensor, args, kwargs)
        if op.inplace:
            self.tensor = result
            return self
        return AutogradSafe(result)

    method.__name__ = method.__qualname__ = op.name
    method.__doc__ = f"``Tensor.{op.name}``, out of place" + (
        ": :attr:`tensor` becomes the result." if op.inplace else "."
    )
    return method


def _tensorwise(op: TensorOp) -> Callable[..., Any]:
    """A tensorwise op: out of place already; a tensor result stays :class:`AutogradSafe`."""

    def method(self: AutogradSafe, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.tensor, op.name)(*map(_plain, args), **kwargs)
        return AutogradSafe(result) if isinstance(result, Tensor) else result

    method.__name__ = method.__qualname__ = op.name
    method.__doc__ = f"``Tensor.{op.name}`` ({op.what})."
    return method


class AutogradSafe:
    """One tensor seen through the op vocabulary, every op computed out of place.

    Args:
        tensor: the value (:attr:`tensor`; an in-place op rebinds it to its result).

    ``torch.maximum(a, b, out=a)`` rebinds ``a`` to ``torch.maximum(a, b)``.
    """

    __slots__ = ("tensor",)
    is_sparse = False

    def __init__(self, tensor: Tensor) -> None:
        self.tensor = tensor

    def __repr__(self) -> str:
        return f"AutogradSafe({self.tensor!r})"

    @property
    def dtype(self) -> torch.dtype:
        return self.tensor.dtype

    @staticmethod
    def unwrap(x: Any) -> Any:
        """The tensor of an :class:`AutogradSafe`; anything else as it is."""
        return _plain(x)

    @classmethod
    def __torch_function__(
        cls, func: Any, types: Any, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        op, out, operands = out_call("the differentiable path", func, args, kwargs or {}, cls)
        out.tensor = compute(op, out.tensor, operands, {})
        return out


for _op in METHODS:
    setattr(AutogradSafe, _op.name, _method(_op))
for _tensor_op in TENSORWISE:
    setattr(AutogradSafe, _tensor_op.name, _tensorwise(_tensor_op))
