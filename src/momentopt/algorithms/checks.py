"""Argument checks shared by the algorithms, raising torch.optim's exact errors.

The message is torch's (a drop-in replacement raises what torch raises); the allowed range is
attached as an exception note, which tracebacks print below the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor


def require(ok: bool, message: str, allowed: str, error: type[Exception] = ValueError) -> None:
    """Raise ``error(message)`` with the note ``allowed: …`` unless ``ok``."""
    if not ok:
        err = error(message)
        err.add_note(f"allowed: {allowed}")
        raise err


def check_tensor_lr(lr: Any) -> None:
    require(
        not (isinstance(lr, Tensor) and lr.numel() != 1),
        "Tensor lr must be 1-element",
        "lr is a float or a 1-element tensor",
    )


def check_lr(lr: Any) -> None:
    """torch's common lr checks: 1-element if a tensor, and ``0 <= lr``."""
    check_tensor_lr(lr)
    require(0.0 <= lr, f"Invalid learning rate: {lr}", "lr >= 0")


def check_eps(eps: Any) -> None:
    require(0.0 <= eps, f"Invalid epsilon value: {eps}", "eps >= 0")


def check_weight_decay(weight_decay: Any) -> None:
    require(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}", "weight_decay >= 0")


def check_betas(betas: Any) -> None:
    for i in (0, 1):
        require(
            0.0 <= betas[i] < 1.0,
            f"Invalid beta parameter at index {i}: {betas[i]}",
            f"0 <= betas[{i}] < 1",
        )


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
