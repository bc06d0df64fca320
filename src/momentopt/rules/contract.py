"""The contract between rules and whatever runs them.

A rule is math only. It is written against two things defined here and implemented by the
engine (the rules package imports nothing from it):

* :class:`UpdateView` — what a rule sees of one update: the param group's hyperparameters,
  the step count ``t``, the parameter ``w``, the gradient ``g`` and named state. The view
  holds one parameter or a bucket of them; the rule cannot tell which.
* the tensor vocabulary — ``w``, ``g`` and the state answer the ``torch.Tensor`` methods
  and ``torch`` functions of the engine's op table (``mul_``, ``addcmul_``, ``lerp_``, ...,
  ``torch.maximum(a, b, out=a)``; see ``docs/architecture.md``). A rule that uses only these
  runs on every execution path:
  one tensor at a time, ``torch._foreach_*`` over a bucket, recorded and compiled, under
  autograd (``differentiable=True``) and with sparse gradients (which update only their rows).

State is declared as data (:class:`StateSpec`), so the engine creates it, orders it, buckets
by it, validates loaded checkpoints against it and packs it, and a rule never initialises
state itself. A state may have its own shape (a factored second moment keeps a row and a column
per matrix) and exist only for some parameter shapes.

Beyond elementwise ops, a rule may look at each tensor as a whole (the *tensorwise* ops of the
engine's op table): ``x.norm()``, ``x.norm(dim=d, keepdim=True)``, ``x.mean(dim=d,
keepdim=True)``, ``a @ b``, and the numbers ``x.norm().item()``, ``x.numel()``, ``x.size(d)``.
On one tensor these are torch's; on a bucket a number is one per tensor, a :class:`Scalars`,
which computes elementwise and which the ops take where they take a number. :func:`each` applies
a function of plain numbers (``max``, ``math.sqrt``) to them. A function of matrices
(orthogonalisation) runs through :meth:`UpdateView.map_matrices`. The compiled path records
none of these; the step plan says so and runs such a recipe multi-tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from math import prod
from typing import Any, Protocol

from torch import Tensor

Scalar = float | Tensor
"""A number a rule computes with: a float, or a 0-d tensor (a tensor hyperparameter)."""


class Start(Enum):
    """How a state tensor starts."""

    ZEROS = "zeros"
    """zeros shaped like the parameter (``preserve_format``)."""
    FILL = "fill"
    """every element the hyperparameter :attr:`StateSpec.value` names (a scalar: that value,
    read as a number)."""
    ONE = "one"
    """the scalar 1 (a running product)."""
    FIRST_VALUE = "first value"
    """a copy of the first value the rule computes for it (:meth:`UpdateView.start`)."""
    PARAM = "param"
    """a copy of the parameter before its first step (a second iterate sequence, a starting
    point), in the state's :attr:`StateSpec.shape` (of the entries :attr:`StateSpec.every`
    keeps)."""


@dataclass(frozen=True)
class StateSpec:
    """One piece of state a rule keeps, per parameter.

    Attributes:
        name: the key in the optimizer's state (torch.optim's name for the same quantity).
        start: how it starts; :attr:`Start.FIRST_VALUE` state is created during the first step
            that computes it, every other state before the parameter's first step.
        scalar: a 0-d tensor (one number per parameter), not a tensor shaped like it.
        value: for :attr:`Start.FILL`, the hyperparameter holding the starting value.
        signed: whether its values can be negative (False for sums and averages of squares).
        exists: under which hyperparameters it is kept (default: always).
        shape: its shape from the parameter's shape (default: the parameter's own shape;
            zeros of another shape start contiguous, as torch's ``new_zeros``).
        kept_for: for which parameter shapes it is kept (default: every shape); parameters
            that keep other states step in other buckets.
        every: a state of a sample of the parameter's entries: every ``k``-th entry of the
            flattened parameter, ``k = every(group)`` (Prodigy's ``slice_p``); its shape is
            ``(⌈n/k⌉,)`` for a parameter of ``n`` elements (``shape`` unused), and a
            :attr:`Start.PARAM` state copies those entries, ``w.flatten()[::k]``.
    """

    name: str
    start: Start = Start.ZEROS
    scalar: bool = False
    value: str | None = None
    signed: bool = True
    exists: Callable[[Mapping[str, Any]], bool] | None = None
    shape: Callable[[tuple[int, ...]], tuple[int, ...]] | None = None
    kept_for: Callable[[tuple[int, ...]], bool] | None = None
    every: Callable[[Mapping[str, Any]], int] | None = None

    def kept(self, group: Mapping[str, Any]) -> bool:
        """Whether this state exists for ``group``'s hyperparameters."""
        return self.exists is None or bool(self.exists(group))

    def applies(self, shape: Sequence[int]) -> bool:
        """Whether a parameter of ``shape`` keeps this state."""
        return self.kept_for is None or bool(self.kept_for(tuple(shape)))

    def shape_for(self, shape: Sequence[int], group: Mapping[str, Any]) -> tuple[int, ...]:
        """The state's shape for a parameter of ``shape`` in ``group``."""
        if self.every is not None:
            k = int(self.every(group))
            return (-(-prod(shape) // k),)  # ⌈n/k⌉, as len(w.flatten()[::k])
        return tuple(shape) if self.shape is None else tuple(self.shape(tuple(shape)))


class Scalars:
    """Numbers, one per tensor of a bucket: what a tensorwise number (``x.norm().item()``,
    ``x.numel()``) is on the multi-tensor path (on one tensor it is a plain number).

    Arithmetic with numbers and other :class:`Scalars` is elementwise and in Python's
    arithmetic (floats, or 0-d tensors where a tensor hyperparameter enters); the engine's ops
    take them where they take a number (``x.div_(n)``, ``alpha=``), each tensor its own.
    """

    __slots__ = ("values",)

    def __init__(self, values: Sequence[Any]) -> None:
        self.values = tuple(values)

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.values)

    def __repr__(self) -> str:
        return f"Scalars({list(self.values)!r})"

    def _with(self, other: Any, fn: Callable[[Any, Any], Any]) -> Scalars:
        return each(fn, self, other)

    def __add__(self, other: Any) -> Scalars:
        return self._with(other, lambda a, b: a + b)

    def __radd__(self, other: Any) -> Scalars:
        return self._with(other, lambda a, b: b + a)

    def __sub__(self, other: Any) -> Scalars:
        return self._with(other, lambda a, b: a - b)

    def __rsub__(self, other: Any) -> Scalars:
        return self._with(other, lambda a, b: b - a)

    def __mul__(self, other: Any) -> Scalars:
        return self._with(other, lambda a, b: a * b)

    def __rmul__(self, other: Any) -> Scalars:
        return self._with(other, lambda a, b: b * a)

    def __truediv__(self, other: Any) -> Scalars:
        return self._with(other, lambda a, b: a / b)

    def __rtruediv__(self, other: Any) -> Scalars:
        return self._with(other, lambda a, b: b / a)

    def __pow__(self, other: Any) -> Scalars:
        return self._with(other, lambda a, b: a**b)

    def __rpow__(self, other: Any) -> Scalars:
        return self._with(other, lambda a, b: b**a)

    def __neg__(self) -> Scalars:
        return Scalars([-a for a in self.values])


def each(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn`` of each tensor's numbers: ``fn(*args)`` for plain numbers; for :class:`Scalars`
    (the others broadcast), the :class:`Scalars` of ``fn`` tensor by tensor. So
    ``each(max, ε, rms)`` is Python's ``max`` of every tensor's RMS, NaN handling included."""
    sizes = {len(a) for a in args if isinstance(a, Scalars)}
    if not sizes:
        return fn(*args)
    if len(sizes) != 1:
        raise ValueError(f"Scalars of different lengths {sorted(sizes)}")
    (n,) = sizes
    columns = [a.values if isinstance(a, Scalars) else (a,) * n for a in args]
    return Scalars([fn(*row) for row in zip(*columns, strict=True)])


def matrix_function(fn: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """Mark ``fn`` as a function of a batch of matrices, for :meth:`UpdateView.map_matrices`.

    It gets a plain tensor of shape ``(m, n)`` or ``(k, m, n)`` (``k`` matrices of one shape)
    and returns one of the same leading shape, and it must compute each matrix as it would
    alone (batched ops: ``@``, ``torch.baddbmm`` for ``torch.addmm``, ``dim=(-2, -1)``). It is
    torch code on real tensors, outside the op vocabulary (its ops are not recorded for the
    compiled path)."""
    fn.matrix_function = True  # type: ignore[attr-defined]
    return fn


class UpdateView(Protocol):
    """One update as a rule sees it.

    Attributes:
        group: the param group's hyperparameters by torch.optim's names (``lr``, ``betas``,
            ...): numbers, or 0-d tensors for tensor hyperparameters.
        t: the step count after this step's increment (1 at the first step).
        param: the parameters ``w`` (updated in place only by the engine's final update and
            by decoupled decay; :class:`~.base.AfterUpdate` rules see them updated).
        grad: the gradients ``g``.
    """

    group: Mapping[str, Any]
    t: float
    param: Any
    grad: Any

    def state(self, name: str) -> Any:
        """The state tensors ``name`` (declared by the rule)."""

    def has(self, name: str) -> bool:
        """Whether the state ``name`` exists: a :attr:`Start.FIRST_VALUE` state once created,
        a state :attr:`StateSpec.kept_for` some shapes for parameters of those shapes."""

    def start(self, name: str, value: Any) -> Any:
        """Create the :attr:`Start.FIRST_VALUE` state ``name`` as a copy of ``value`` and
        return it."""

    def scale_scalar_(self, name: str, factor: Scalar) -> Scalar:
        """``s ← s · factor`` for the scalar state ``name``; returns the new value (a float,
        or under autograd a tensor that carries its gradient)."""

    def scalar(self, name: str) -> float:
        """The value of the scalar state ``name`` as a number, as torch.optim reads its 0-d
        states (``.item()``; no gradient flows through it, under autograd either)."""

    def set_scalar(self, name: str, value: Scalar) -> None:
        """``s ← value`` for the scalar state ``name``: a number is first made a tensor of the
        default dtype, then copied into ``s`` (torch's ``s.copy_(torch.as_tensor(value))``)."""

    def map_matrices(self, fn: Callable[[Tensor], Tensor], x: Any) -> Any:
        """``fn`` (a :func:`matrix_function`) of each 2-D tensor of ``x``: of ``x`` itself on
        one tensor; on a bucket, of the tensors of one shape stacked, one call per shape."""
