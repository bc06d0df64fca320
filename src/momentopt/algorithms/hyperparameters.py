"""The hyperparameters of each algorithm, one table per algorithm, as torch.optim has them.

A :class:`Hyperparameter` is one argument of a constructor: its name, its default, the torch
release that added it, the range the constructor allows (a :class:`Bound`, with torch's message)
or its own check, and the value torch's ``__setstate__`` fills in when a loaded param group lacks
the key. A :class:`HyperparameterTable` lists an algorithm's hyperparameters in the key order of
torch's ``defaults`` and gives the order of the constructor's checks; the ``defaults`` dict, the
keys filled in on load and every check of a param group come from it.

The entries below are those several algorithms (or :mod:`momentopt.compose`) share; an
algorithm's table takes one with :meth:`Hyperparameter.of`, giving its default and release.

A release is written ``"1.12"`` (added in it), ``"<= 1.0"`` (already there; when it came is not
known), ``"> 2.2"`` (not yet there) or ``"2.3 or 2.4"``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from torch import Tensor

from .checks import check_group_flags, require

Check = Callable[[Mapping[str, Any]], None]
"""A check of a param group's values that raises torch's error for what it refuses."""


class _Unset(enum.Enum):
    UNSET = "unset"


UNSET = _Unset.UNSET
"""A field without a value: a default the algorithm gives, or a key not filled in on load."""


@dataclass(frozen=True)
class Bound:
    """The range torch's constructor allows a number: ``0 <= value`` (``0 < value`` if
    ``open_low``), and ``value <= high`` (``value < high`` if ``open_high``).

    Args:
        message: torch's ``ValueError`` text, with ``{value}`` (and ``{index}`` for a pair)
        high: the upper bound, if any
        open_high: whether ``high`` itself is outside
        nan_passes: whether the range is written as refusals (``if value < 0: raise``), as
            torch's SGD writes it, so that NaN passes
        pair: whether the value is two numbers (``betas``), each in the range
        open_low: whether 0 itself is outside
    """

    message: str
    high: float | None = None
    open_high: bool = False
    nan_passes: bool = False
    pair: bool = False
    open_low: bool = False

    def _above(self, value: Any) -> bool:
        if self.high is None:
            return False
        return bool(value >= self.high) if self.open_high else bool(value > self.high)

    def holds(self, value: Any) -> bool:
        """Whether the number ``value`` is in the range; comparing anything else than a number
        raises ``TypeError``, as it does in torch."""
        if self.nan_passes:
            return not (value < 0.0 or self._above(value))
        low = bool(0.0 < value) if self.open_low else bool(0.0 <= value)
        return low and not self._above(value)

    def contains(self, value: Any) -> bool:
        """Whether ``value`` (two numbers for a pair) is in the range."""
        if self.pair:
            return len(value) == 2 and all(self.holds(v) for v in value)
        return self.holds(value)

    def _describe(self, label: str) -> str:
        if self.high is None:
            return f"{label} {'>' if self.open_low else '>='} 0"
        return f"0 <= {label} {'<' if self.open_high else '<='} {self.high:g}"

    def describe(self, name: str) -> str:
        """The range of ``name`` as text, e.g. ``lr >= 0``, ``0 <= rho <= 1`` or, for a pair,
        ``0 <= betas[i] < 1``."""
        return self._describe(f"{name}[i]" if self.pair else name)

    def check(self, name: str, value: Any) -> None:
        """Raise torch's ``ValueError``, with the range as its ``allowed: …`` note, unless
        ``value`` is in the range (for a pair: its first, then its second number)."""
        if not self.pair:
            require(self.holds(value), self.message.format(value=value), self.describe(name))
            return
        for i in (0, 1):
            require(
                self.holds(value[i]),
                self.message.format(index=i, value=value[i]),
                self._describe(f"{name}[{i}]"),
            )


@dataclass(frozen=True)
class Hyperparameter:
    """One argument of a torch optimizer's constructor, and key of its param groups.

    Args:
        name: the argument's name
        default: the constructor's default (``UNSET`` in a shared entry without one)
        since: the torch release that added it to the algorithm (see the module's notes)
        bound: the range the constructor allows, with torch's message
        one_element: whether a tensor value must hold one element (torch's ``Tensor lr must
            be 1-element``, checked before the range)
        check: the constructor's check where it is more than ``one_element`` and ``bound``;
            it then replaces them
        on_load: what torch's ``__setstate__`` fills in when a loaded group lacks the key
            (``UNSET``: nothing; the key is then required)
    """

    name: str
    default: Any = UNSET
    since: str = ""
    bound: Bound | None = None
    one_element: bool = False
    check: Check | None = None
    on_load: Any = UNSET

    @property
    def checked(self) -> bool:
        """Whether the constructor checks the value."""
        return self.check is not None or self.bound is not None or self.one_element

    def of(self, default: Any = UNSET, *, since: str, **changes: Any) -> Hyperparameter:
        """This entry as an algorithm has it: with its ``default`` (unless the entry's own is
        kept), the release that added it and any other field changed (``on_load=...``)."""
        if default is not UNSET:
            changes["default"] = default
        return replace(self, since=since, **changes)

    def check_value(self, value: Any) -> None:
        """The ``one_element`` and ``bound`` checks of ``value``, with torch's messages."""
        if self.one_element:
            require(
                not (isinstance(value, Tensor) and value.numel() != 1),
                f"Tensor {self.name} must be 1-element",
                f"{self.name} is a float or a 1-element tensor",
            )
        if self.bound is not None:
            self.bound.check(self.name, value)

    def verify(self, group: Mapping[str, Any]) -> None:
        """The constructor's check of this key of ``group``, with torch's messages."""
        if self.check is not None:
            self.check(group)
        else:
            self.check_value(group[self.name])


class HyperparameterTable:
    """An algorithm's hyperparameters, each stated once.

    Args:
        *rows: the hyperparameters, in the key order of torch's ``defaults``
        checks: the checks the constructor makes before ``Optimizer.__init__``, in torch's
            order: the name of a row (its check), or a check of several keys
        checks_after_init: likewise, those it makes after ``Optimizer.__init__``
        load_order: the order in which torch's ``__setstate__`` fills in the rows with an
            ``on_load`` value, where it is not the order of ``rows``

    Every row has a default and a release, and every checked row is named in ``checks`` or
    ``checks_after_init`` exactly once (``ValueError`` otherwise).
    """

    def __init__(
        self,
        *rows: Hyperparameter,
        checks: Sequence[str | Check],
        checks_after_init: Sequence[str | Check] = (),
        load_order: Sequence[str] | None = None,
    ) -> None:
        self._rows = {row.name: row for row in rows}
        self.checks = tuple(checks)
        self.checks_after_init = tuple(checks_after_init)
        filled = [row.name for row in rows if row.on_load is not UNSET]
        self.load_order = tuple(filled if load_order is None else load_order)
        incomplete = [row.name for row in rows if row.default is UNSET or not row.since]
        named = [c for c in (*self.checks, *self.checks_after_init) if isinstance(c, str)]
        checked = [row.name for row in rows if row.checked]
        if len(self._rows) != len(rows) or incomplete:
            raise ValueError(f"rows repeated or without a default and a release: {incomplete}")
        if sorted(named) != sorted(checked):
            raise ValueError(f"checks {named} do not name each checked row {checked} once")
        if sorted(self.load_order) != sorted(filled):
            raise ValueError(f"load_order {self.load_order} is not the rows filled in {filled}")

    def __iter__(self) -> Iterator[Hyperparameter]:
        return iter(self._rows.values())

    def __getitem__(self, name: str) -> Hyperparameter:
        return self._rows[name]

    def with_row(self, name: str, **changes: Any) -> HyperparameterTable:
        """The table with the fields of row ``name`` changed (checks and orders kept)."""
        rows = [replace(row, **changes) if row.name == name else row for row in self]
        return HyperparameterTable(
            *rows,
            checks=self.checks,
            checks_after_init=self.checks_after_init,
            load_order=self.load_order,
        )

    def defaults(self) -> dict[str, Any]:
        """The constructor's ``defaults`` when every argument keeps its default."""
        return {row.name: row.default for row in self}

    def defaults_from(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The ``defaults`` dict, in torch's key order, of the constructor's ``arguments``
        (its ``locals()``)."""
        return {row.name: arguments[row.name] for row in self}

    def load_defaults(self) -> dict[str, Any]:
        """The keys torch's ``__setstate__`` fills in when a loaded group lacks them, with
        their values, in torch's order."""
        return {name: self[name].on_load for name in self.load_order}

    def _run(self, checks: tuple[str | Check, ...], group: Mapping[str, Any]) -> None:
        for check in checks:
            if isinstance(check, str):
                self[check].verify(group)
            else:
                check(group)

    def check_values(self, group: Mapping[str, Any]) -> None:
        """The checks the constructor makes of ``group`` before ``Optimizer.__init__``."""
        self._run(self.checks, group)

    def check_flags(self, group: Mapping[str, Any]) -> None:
        """The checks the constructor makes of ``group`` after ``Optimizer.__init__``."""
        self._run(self.checks_after_init, group)

    def check(self, group: Mapping[str, Any]) -> None:
        """Every check the constructor makes of ``group``, in torch's order."""
        self.check_values(group)
        self.check_flags(group)


# -- entries shared by several algorithms (or momentopt.compose) ------------------------------
LR = Hyperparameter("lr", bound=Bound("Invalid learning rate: {value}"), one_element=True)
EPS = Hyperparameter("eps", bound=Bound("Invalid epsilon value: {value}"))
WEIGHT_DECAY = Hyperparameter("weight_decay", 0, bound=Bound("Invalid weight_decay value: {value}"))
MOMENTUM = Hyperparameter("momentum", 0, bound=Bound("Invalid momentum value: {value}"))
BETAS = Hyperparameter(
    "betas",
    (0.9, 0.999),
    bound=Bound(
        "Invalid beta parameter at index {index}: {value}", high=1.0, open_high=True, pair=True
    ),
)
ALPHA = Hyperparameter("alpha", bound=Bound("Invalid alpha value: {value}"))
RHO = Hyperparameter("rho", bound=Bound("Invalid rho value: {value}", high=1.0))
LR_DECAY = Hyperparameter("lr_decay", bound=Bound("Invalid lr_decay value: {value}"))
INITIAL_ACCUMULATOR_VALUE = Hyperparameter(
    "initial_accumulator_value", bound=Bound("Invalid initial_accumulator_value value: {value}")
)
MOMENTUM_DECAY = Hyperparameter(
    "momentum_decay", bound=Bound("Invalid momentum_decay value: {value}")
)
DECOUPLED_WEIGHT_DECAY = Hyperparameter("decoupled_weight_decay", False)
FOREACH = Hyperparameter("foreach", None)
MAXIMIZE = Hyperparameter("maximize", False)
DIFFERENTIABLE = Hyperparameter("differentiable", False)
CAPTURABLE = Hyperparameter("capturable", False)
FUSED = Hyperparameter("fused", None, check=check_group_flags)
"""``fused``'s check is torch's: with ``fused=True``, neither ``differentiable`` nor ``foreach``."""

RANGED: tuple[Hyperparameter, ...] = (
    LR,
    EPS,
    WEIGHT_DECAY,
    MOMENTUM,
    BETAS,
    ALPHA,
    RHO,
    LR_DECAY,
    INITIAL_ACCUMULATOR_VALUE,
    MOMENTUM_DECAY,
)
"""The shared entries with a range."""
