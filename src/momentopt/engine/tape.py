"""Recording a recipe's step as a tape: the rule code run once over stand-in tensors.

The recipe's step is run on stand-in tensors, :class:`TapeTensor` s. Each op of the
vocabulary (:data:`~.ops.VOCABULARY`) a rule calls is appended to a :class:`Tape`; every
Python number that reaches an op (``lr``, ``1 − β1``, ``1/(1 − β1^t)``, ...) is computed by
the rule code in Python, exactly as on the other paths, and becomes a numbered *scalar slot*.

So one run gives two things:

* ``tape.key`` — the structure of the step (ops, operands, slot numbers; no values): the
  same for every step whose branches are the same, whatever ``lr``, betas, ``t`` are;
* ``tape.scalars`` — this step's values of the slots, computed once per step, outside any
  kernel.

:func:`build_kernel` turns a tape into a plain function of (scalars, tensors) that replays the
ops with torch tensor methods; the compiled path compiles it once per key, dtype and device
(with dynamic shapes) and calls it with each step's scalars.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from .ops import BY_NAME, METHODS, TENSORS, TENSORWISE, Op, TensorOp, out_call

Arg = tuple[str, Any]  # ("t", var) | ("s", slot) | ("c", constant)


class CannotRecord(Exception):
    """The step uses what the tape does not record by design (a tensorwise op of
    :data:`~.ops.TENSORWISE`, a function of matrices): the message says what; the plan runs
    the step multi-tensor and gives it as the reason."""


class Tape:
    """The ops of one step; tensor operands are variable numbers, numbers are scalar slots."""

    def __init__(self) -> None:
        self.ops: list[tuple[Any, ...]] = []
        self.scalars: list[float] = []
        self.inputs: list[str] = []  # names of input variables: "param", "grad", state names
        self.input_vars: list[int] = []  # their variable numbers
        self.outputs: dict[str, int] = {}  # state name → variable stored during the step
        self.nvars = 0

    def new_var(self) -> int:
        self.nvars += 1
        return self.nvars - 1

    def input(self, name: str) -> TapeTensor:
        self.inputs.append(name)
        self.input_vars.append(self.new_var())
        return TapeTensor(self, self.input_vars[-1])

    def arg(self, x: Any) -> Arg:
        if isinstance(x, TapeTensor):
            return ("t", x.var)
        if x is None or isinstance(x, bool):
            return ("c", x)
        if isinstance(x, Tensor) and x.numel() == 1 and not x.requires_grad:
            x = x.item()
        if isinstance(x, (int, float)):
            self.scalars.append(float(x))
            return ("s", len(self.scalars) - 1)
        raise TypeError(f"the compiled path cannot record an operand of type {type(x).__name__}")

    def record(
        self,
        name: str,
        target: TapeTensor | None,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        inplace: bool,
    ) -> TapeTensor:
        out = target if inplace and target is not None else TapeTensor(self, self.new_var())
        self.ops.append(
            (
                name,
                out.var,
                None if target is None else target.var,
                tuple(self.arg(a) for a in args),
                tuple(sorted((k, self.arg(v)) for k, v in kwargs.items())),
            )
        )
        return out

    @property
    def key(self) -> tuple[Any, ...]:
        return (
            tuple(self.ops),
            tuple(self.inputs),
            tuple(self.input_vars),
            tuple(sorted(self.outputs.items())),
            len(self.scalars),
        )


def _check_operands(op: Op, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    op.check(args, kwargs)
    for i, (kind, a) in enumerate(zip(op.operands, args, strict=True)):
        if kind in TENSORS and not isinstance(a, TapeTensor):
            raise TypeError(f"{op.name}: operand {i + 1} must be a tensor, got {type(a).__name__}")
    for k, v in kwargs.items():
        if isinstance(v, TapeTensor):
            raise TypeError(f"{op.name}: {k}= must be a number, got a tensor")


def _recorder(op: Op) -> Callable[..., TapeTensor]:
    def method(self: TapeTensor, *args: Any, **kwargs: Any) -> TapeTensor:
        _check_operands(op, args, kwargs)
        return self.tape.record(op.name, self, args, kwargs, op.inplace)

    method.__name__ = method.__qualname__ = op.name
    method.__doc__ = f"Record ``Tensor.{op.name}``."
    return method


def _refuser(op: TensorOp) -> Callable[..., Any]:
    def method(self: TapeTensor, *args: Any, **kwargs: Any) -> Any:
        raise CannotRecord(
            f"the step uses {op.name.strip('_')} ({op.what}), which the compiled path does "
            "not record"
        )

    method.__name__ = method.__qualname__ = op.name
    method.__doc__ = f"Refuse ``Tensor.{op.name}`` ({op.what}): :class:`CannotRecord`."
    return method


class TapeTensor:
    """A stand-in tensor: answers the op vocabulary by recording each op on its tape.

    Args:
        tape: the tape the ops are recorded on.
        var: the variable number it stands for.
    """

    __slots__ = ("tape", "var")
    is_sparse = False

    def __init__(self, tape: Tape, var: int) -> None:
        self.tape = tape
        self.var = var

    @property
    def dtype(self) -> torch.dtype:
        """Unknown while recording (the kernel is compiled per dtype): :class:`CannotRecord`."""
        raise CannotRecord("the tensors' dtype, which one recorded step does not fix")

    @classmethod
    def __torch_function__(
        cls, func: Any, types: Any, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        op, out, operands = out_call("the compiled path", func, args, kwargs or {}, cls)
        _check_operands(op, operands, {})
        return out.tape.record(op.name, out, operands, {}, True)


for _op in METHODS:
    setattr(TapeTensor, _op.name, _recorder(_op))
for _tensor_op in TENSORWISE:
    setattr(TapeTensor, _tensor_op.name, _refuser(_tensor_op))


class _Source:
    """An expression of the kernel's source, to which an op's form is applied: its methods,
    attributes, ``*`` and ``/`` give the source of the method call, attribute or product."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __getattr__(self, name: str) -> _Source:
        return _Source(f"{self.text}.{name}")

    def __call__(self, *args: Any, **kwargs: Any) -> _Source:
        return _Source(f"{self.text}({_arguments(args, kwargs)})")

    def __mul__(self, other: Any) -> _Source:
        return _Source(f"({self} * {other})")

    def __truediv__(self, other: Any) -> _Source:
        return _Source(f"({self} / {other})")


def _arguments(args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    return ", ".join([*map(str, args), *(f"{k}={v}" for k, v in kwargs.items())])


def _source(a: Arg) -> _Source:
    kind, x = a
    return _Source(f"v{x}" if kind == "t" else f"s[{x}]" if kind == "s" else repr(x))


def op_source(op: Op, this: str, args: Sequence[Arg], kwargs: Sequence[tuple[str, Arg]]) -> str:
    """The source of ``op`` on the variable ``this``, with recorded operands and keywords.

    An op with a scalar slot among its arguments is written by its form
    (:attr:`~.ops.Op.form`) where it has one: the slot is a 0-d float64 tensor, which torch's
    ``alpha=``/``value=`` do not take, and the form computes with it in torch's order of
    operations. In place, the form's value is copied into ``this``; so is the out-of-place
    method's value of a torch function writing into ``out`` (``maximum``).
    """
    operands = [_source(a) for a in args]
    keywords = {k: _source(v) for k, v in kwargs}
    value = None
    if op.form is not None and any(kind == "s" for kind, _ in (*args, *(v for _, v in kwargs))):
        value = op.form(_Source(this), *operands, **keywords)
    if value is None and op.out:
        value = getattr(_Source(this), op.name)(*operands, **keywords)
    if value is None:
        return f"{this}.{op.name}({_arguments(operands, keywords)})"
    return f"{this}.copy_({value})" if op.inplace else str(value)


def kernel_source(tape: Tape) -> str:
    """Python source of ``kernel(scalars, *inputs) -> stored states`` replaying ``tape``.

    ``scalars`` is a 1-D float64 tensor (on the kernel's device) of the slots' values; slot
    values enter the arithmetic as 0-d tensors, so a new value is new data, never a new
    program. Each op is written by :func:`op_source`.
    """
    lines = [f"def kernel(s, {', '.join(f'v{v}' for v in tape.input_vars)}):"]
    for name, out, target, args, kwargs in tape.ops:
        lines.append(f"    v{out} = {op_source(BY_NAME[name], f'v{target}', args, kwargs)}")
    outs = "".join(f"v{var}, " for _, var in sorted(tape.outputs.items()))
    lines.append(f"    return ({outs})")
    return "\n".join(lines) + "\n"


def build_kernel(tape: Tape) -> Callable[..., tuple[Tensor, ...]]:
    """The function of :func:`kernel_source`, a new code object per tape (so each compiles
    and caches on its own)."""
    source = kernel_source(tape)
    namespace: dict[str, Any] = {"torch": torch}
    # the source is generated from the vocabulary's entries and the tape's numbers only
    exec(compile(source, f"<momentopt kernel {abs(hash(source)):x}>", "exec"), namespace)  # noqa: S102
    kernel = namespace["kernel"]
    kernel.source = source
    return kernel
