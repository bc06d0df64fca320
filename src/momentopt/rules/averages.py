"""The running averages the moment rules share, written once."""

from __future__ import annotations

from typing import Any


def ema_(avg: Any, x: Any, decay: Any) -> Any:
    """``avg ← decay·avg + (1 − decay)·x`` in place (as a lerp, like torch.optim)."""
    return avg.lerp_(x, 1 - decay)


def ema_of_squares_(avg: Any, x: Any, decay: Any) -> Any:
    """``avg ← decay·avg + (1 − decay)·x²`` in place."""
    return avg.mul_(decay).addcmul_(x, x, value=1 - decay)
