"""The keyword-only options every momentopt optimizer takes beside its reference signature:
``cautious`` (:mod:`.cautious`) and ``state_precision`` (:mod:`momentopt.engine.precision`).

Each is put into ``defaults`` only when on, so an optimizer made without it keeps torch's (or
the reference package's) ``defaults``, ``repr`` and ``state_dict`` layout exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..engine.precision import initial_group_keys
from .cautious import with_cautious

StatePrecision = str | Mapping[str, str | None] | None
"""``None`` (state in the parameter's dtype), ``"bf16"``, ``"int8"``, or a dict from state key
to one of these."""


def with_options(
    defaults: dict[str, Any], cautious: Any, state_precision: StatePrecision
) -> dict[str, Any]:
    """``defaults`` with the group keys of ``cautious`` and ``state_precision`` (checked by
    the optimizer against its recipe's state when it is made)."""
    if isinstance(state_precision, Mapping):
        state_precision = dict(state_precision)  # (the caller's dict is never shared)
    return {**with_cautious(defaults, cautious), **initial_group_keys(state_precision)}
