"""torch.optim's exact errors, and its checks of the implementation flags.

The message is torch's (a drop-in replacement raises what torch raises); the allowed range is
attached as an exception note, which tracebacks print below the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def require(ok: bool, message: str, allowed: str, error: type[Exception] = ValueError) -> None:
    """Raise ``error(message)`` with the note ``allowed: …`` unless ``ok``."""
    if not ok:
        err = error(message)
        err.add_note(f"allowed: {allowed}")
        raise err


def check_flags(fused: Any, foreach: Any, differentiable: bool) -> None:
    """torch's rules for the mutually exclusive implementation flags."""
    if fused:
        require(
            not differentiable,
            "`fused` does not support `differentiable`",
            "fused=True with differentiable=False",
            RuntimeError,
        )
        require(
            not foreach,
            "`fused` and `foreach` cannot be `True` together.",
            "at most one of fused and foreach is True",
            RuntimeError,
        )


def check_group_flags(group: Mapping[str, Any]) -> None:
    """:func:`check_flags` on a param group's ``fused``, ``foreach`` and ``differentiable``."""
    check_flags(group["fused"], group["foreach"], group["differentiable"])
