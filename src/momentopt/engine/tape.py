"""Recording a recipe's step as a tape: the rule code run once over stand-in tensors.

:meth:`Recipe.run` is run on a :class:`TapeBundle`, whose parameter, gradient and state are
:class:`TapeTensor` s. Each tensor method a rule calls (the same vocabulary the per-tensor and
multi-tensor executors answer) is appended to a :class:`Tape`; every Python number that
reaches a tensor method (``lr``, ``1 − β1``, ``1/(1 − β1^t)``, ...) is computed by the rule
code in Python, exactly as in the other executors, and becomes a numbered *scalar slot*.

So one run gives two things:

* ``tape.key`` — the structure of the step (ops, operands, slot numbers; no values): the
  same for every step whose branches are the same, whatever ``lr``, betas, ``t`` are;
* ``tape.scalars`` — this step's values of the slots, computed once per step, outside any
  kernel.

:func:`build_kernel` turns a tape into a plain function of (scalars, tensors) that replays the
ops with torch tensor methods; the fused executor compiles it once per key, dtype and device
(with dynamic shapes) and calls it with each step's scalars.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from .bundle import Bundle

Arg = tuple[str, Any]  # ("t", var) | ("s", slot) | ("c", constant)


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
        raise TypeError(f"the fused executor cannot record an operand of type {type(x).__name__}")

    def record(self, name: str, target: TapeTensor | None, args: Sequence[Any],
               kwargs: Mapping[str, Any], inplace: bool) -> TapeTensor:
        out = target if inplace and target is not None else TapeTensor(self, self.new_var())
        self.ops.append((
            name,
            out.var,
            None if target is None else target.var,
            tuple(self.arg(a) for a in args),
            tuple(sorted((k, self.arg(v)) for k, v in kwargs.items())),
        ))
        return out

    @property
    def key(self) -> tuple[Any, ...]:
        return (tuple(self.ops), tuple(self.inputs), tuple(self.input_vars),
                tuple(sorted(self.outputs.items())),
                len(self.scalars))


def _method(name: str, inplace: bool) -> Callable[..., TapeTensor]:
    def method(self: TapeTensor, *args: Any, **kwargs: Any) -> TapeTensor:
        return self.tape.record(name, self, args, kwargs, inplace)

    method.__name__ = name
    return method


class TapeTensor:
    """A stand-in tensor: answers the rules' tensor methods by recording them."""

    __slots__ = ("tape", "var")
    is_sparse = False

    def __init__(self, tape: Tape, var: int) -> None:
        self.tape = tape
        self.var = var

    neg = _method("neg", False)
    sqrt = _method("sqrt", False)
    add = _method("add", False)
    mul = _method("mul", False)
    div = _method("div", False)
    addcmul = _method("addcmul", False)
    clone = _method("clone", False)
    detach = _method("detach", False)
    neg_ = _method("neg_", True)
    sqrt_ = _method("sqrt_", True)
    add_ = _method("add_", True)
    mul_ = _method("mul_", True)
    div_ = _method("div_", True)
    addcmul_ = _method("addcmul_", True)
    addcdiv_ = _method("addcdiv_", True)
    lerp_ = _method("lerp_", True)
    copy_ = _method("copy_", True)

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is torch.maximum and isinstance(kwargs.get("out"), TapeTensor):
            out = kwargs["out"]
            return out.tape.record("maximum_into", out, args, {}, True)
        raise TypeError(f"the fused executor cannot record {getattr(func, '__name__', func)}")


class TapeBundle(Bundle):
    """A :class:`~momentopt.engine.bundle.Bundle` whose tensors are tape variables.

    Scalar state (``mu_product``) is read from the real states, and its update is computed
    as the other executors compute it but applied only by :meth:`commit`; tensor state is
    recorded.
    """

    def __init__(self, tape: Tape, states: Sequence[dict[str, Any]], *, step: float,
                 hp: Mapping[str, Any], defaults: Mapping[str, Any],
                 params: Sequence[Tensor]) -> None:
        self._bind(params, states, step=step, hp=hp, defaults=defaults, differentiable=False,
                   observer=None)
        self.tape = tape
        self.param = tape.input("param")  # type: ignore[assignment]
        self.grad = tape.input("grad")  # type: ignore[assignment]
        self._vars: dict[str, TapeTensor] = {}
        self.pending: list[tuple[str, float]] = []

    def has(self, name: str) -> bool:
        return name in self._states[0] or name in self._vars

    def state(self, name: str) -> TapeTensor:
        if name not in self._vars:
            self._vars[name] = self.tape.input(name)
        return self._vars[name]

    def store(self, name: str, value: TapeTensor) -> None:
        self.tape.outputs[name] = value.var
        self._vars[name] = value

    def scale_scalar_(self, name: str, factor: float) -> float:
        """The value ``s ← s · factor`` gives; the states change only at :meth:`commit`
        (after the compiled step ran), so a failed compile leaves them as they were."""
        self.pending.append((name, factor))
        return (self._states[0][name] * factor).item()

    def commit(self, scale: Callable[[str, float], None]) -> None:
        """Apply the deferred scalar-state updates with ``scale(name, factor)``."""
        for name, factor in self.pending:
            scale(name, factor)
        self.pending.clear()

    def new_zeros_state(self, name: str) -> TapeTensor:
        value = self.tape.record("zeros_like", self.param, (), {}, False)
        self.store(name, value)
        return value


def kernel_source(tape: Tape) -> str:
    """Python source of ``kernel(scalars, *inputs) -> stored states`` replaying ``tape``.

    ``scalars`` is a 1-D float64 tensor (on the kernel's device) of the slots' values; slot
    values enter the arithmetic as 0-d tensors, so a new value is new data, never a new
    program. Methods that
    take a number only as a Python scalar (``alpha=``, ``value=``) are written out with the
    same order of operations as torch's kernels (``self + value·t1·t2``, ``self + value·t1/t2``).
    """
    def val(a: Arg) -> str:
        kind, x = a
        return f"v{x}" if kind == "t" else f"s[{x}]" if kind == "s" else repr(x)

    lines = [f"def kernel(s, {', '.join(f'v{v}' for v in tape.input_vars)}):"]
    for name, out, target, args, kwargs in tape.ops:
        this = f"v{target}"
        a = [val(x) for x in args]
        kw = {k: val(v) for k, v in kwargs}
        base, inplace = name.rstrip("_"), name.endswith("_")
        method = "add_" if inplace else "add"
        if base == "add" and args[0][0] == "t":
            other = a[0] if "alpha" not in kw else f"({a[0]} * {kw['alpha']})"
            expr = f"{this}.{method}({other})"
        elif base == "addcmul":
            prod = f"{a[0]} * {a[1]}" if "value" not in kw else f"{kw['value']} * {a[0]} * {a[1]}"
            expr = f"{this}.{method}({prod})"
        elif base == "addcdiv":
            num = a[0] if "value" not in kw else f"({kw['value']} * {a[0]})"
            expr = f"{this}.add_({num} / {a[1]})"
        elif base == "lerp":
            weight = a[1] if args[1][0] != "s" else f"{a[1]}.to({this}.dtype)"
            expr = f"{this}.lerp_({a[0]}, {weight})"
        elif name == "maximum_into":
            expr = f"{this}.copy_(torch.maximum({a[0]}, {a[1]}))"
        elif name == "zeros_like":
            expr = f"torch.zeros_like({this})"
        else:
            expr = f"{this}.{name}({', '.join(a + [f'{k}={v}' for k, v in kw.items()])})"
        lines.append(f"    v{out} = {expr}")
    outs = "".join(f"v{var}, " for _, var in sorted(tape.outputs.items()))
    lines.append(f"    return ({outs})")
    return "\n".join(lines) + "\n"


def build_kernel(tape: Tape) -> Callable[..., tuple[Tensor, ...]]:
    """The function of :func:`kernel_source`, a new code object per tape (so each compiles
    and caches on its own)."""
    source = kernel_source(tape)
    namespace: dict[str, Any] = {"torch": torch}
    exec(compile(source, f"<momentopt kernel {abs(hash(source)):x}>", "exec"), namespace)
    kernel = namespace["kernel"]
    kernel.source = source
    return kernel
