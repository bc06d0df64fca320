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
state itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
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
    """

    name: str
    start: Start = Start.ZEROS
    scalar: bool = False
    value: str | None = None
    signed: bool = True
    exists: Callable[[Mapping[str, Any]], bool] | None = None

    def kept(self, group: Mapping[str, Any]) -> bool:
        """Whether this state exists for ``group``'s hyperparameters."""
        return self.exists is None or bool(self.exists(group))


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
        """Whether the :attr:`Start.FIRST_VALUE` state ``name`` exists yet."""

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
