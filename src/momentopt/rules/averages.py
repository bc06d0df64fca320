"""The running averages the moment rules share, written once.

Each works on a tensor or a :class:`~momentopt.engine.tensorlist.TensorList` alike.
"""

from __future__ import annotations

from ..engine.tensorlist import Tensors


def ema_(avg: Tensors, x: Tensors, decay: float) -> Tensors:
    """``avg ← decay·avg + (1 − decay)·x`` (as a lerp, like torch.optim)."""
    return avg.lerp_(x, 1 - decay)


def ema_of_squares_(avg: Tensors, x: Tensors, decay: float) -> Tensors:
    """``avg ← decay·avg + (1 − decay)·x²``."""
    return avg.mul_(decay).addcmul_(x, x, value=1 - decay)


def plus_eps(x: Tensors, eps: float, differentiable: bool) -> Tensors:
    """``x + ε``, in place unless autograd saved ``x`` (it did if ``x`` came from a sqrt)."""
    return x.add(eps) if differentiable else x.add_(eps)
