"""Defects that PyTorch's own optimizer test suite found in momentopt's drop-ins.

torch's ``test/test_optim.py`` (``TestOptimRenewed``, driven by ``optim_db``) and
``test/optim/test_optim.py`` (``TestDifferentiableOptimizer``), run with momentopt's classes
swapped in for torch.optim's, are what an independent checker runs. Each test here pins one
defect they revealed, judged against torch.optim itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch

from .helpers import assert_close_report
from .optimizer_table import OPTIMIZERS, OptimizerCase

DTYPE = torch.float64


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def meta_gradient(
    cls: type[torch.optim.Optimizer], kwargs: dict[str, Any]
) -> tuple[torch.Tensor, torch.Tensor]:
    """torch's ``TestDifferentiableOptimizer`` loop: two differentiable steps on ``x·Σw`` with
    the gradient's graph kept, then the loss's gradient with respect to ``weight_decay``.
    Returns (loss, d loss / d weight_decay)."""
    generator = torch.Generator().manual_seed(0)
    weight_decay = torch.tensor(0.3, dtype=DTYPE, requires_grad=True)
    leaf = torch.rand(10, dtype=DTYPE, generator=generator, requires_grad=True)
    param = leaf.clone()  # a non-leaf, as in torch's test: the step updates it in place
    optimizer = cls([param], weight_decay=weight_decay, differentiable=True, **kwargs)
    x, y = torch.tensor([1.0], dtype=DTYPE), torch.tensor([2.0], dtype=DTYPE)
    for _ in range(2):
        loss = torch.nn.functional.mse_loss(x * param.sum(), y)
        loss.backward(inputs=(param,), create_graph=True)
        optimizer.step()
        optimizer.zero_grad()
    (gradient,) = torch.autograd.grad(loss, weight_decay)
    return loss.detach(), gradient


def _takes_tensor_weight_decay(case: OptimizerCase, kwargs: dict[str, Any]) -> bool:
    """torch's differentiable step takes a ``weight_decay`` tensor that requires grad (SGD,
    Adam, AdamW; decoupled decay in NAdam); the others' ``grad.add(param, alpha=λ)`` refuses
    it with a TypeError that momentopt does not copy (it computes the decay instead)."""
    try:
        meta_gradient(case.torch_cls, kwargs)
    except TypeError:
        return False
    return True


DECAY_CASES = [
    pytest.param(name, kwargs, id=f"{name}-{'-'.join(kwargs) or 'coupled'}")
    for name, case in OPTIMIZERS.items()
    if case.takes("weight_decay") and case.supports("differentiable")
    for kwargs in ({}, {"decoupled_weight_decay": True})
    if not kwargs or case.takes(*kwargs)
]


@pytest.mark.parametrize("name,kwargs", DECAY_CASES)
def test_differentiable_tensor_weight_decay(name: str, kwargs: dict[str, Any]) -> None:
    """A ``weight_decay`` tensor that requires grad, coupled (``g + λ·w``) or decoupled: the
    meta-gradient equals torch's. (torch's test_adam_differentiable_weight_decay and
    test_differentiable_weight_decay failed: autograd saved ``w`` for ``λ``'s gradient and the
    update then changed ``w`` in place; torch reads a ``param.clone()``.) The default dtype is
    float64 so that torch keeps ``step`` in float64 too (its differentiable path computes bias
    corrections in ``step``'s dtype, momentopt in float64)."""
    case = OPTIMIZERS[name]
    with default_dtype(DTYPE):
        if not _takes_tensor_weight_decay(case, kwargs):
            pytest.skip(f"torch's {name} refuses a weight_decay tensor that requires grad")
        expected = meta_gradient(case.torch_cls, kwargs)
        actual = meta_gradient(case.ours_cls, kwargs)
    tolerance = case.tolerances.direct[DTYPE].kwargs()
    for what, ours, theirs in zip(
        ("loss", "d loss / d weight_decay"), actual, expected, strict=True
    ):
        assert_close_report(ours, theirs, f"{name} {what}", **tolerance)
