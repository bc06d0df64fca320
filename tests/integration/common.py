"""Shared pieces of the integration tests: the seven pairs, a tiny model, data, checks."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import momentopt

from ..helpers import assert_close_report

ALGORITHMS = ("SGD", "Adagrad", "Adadelta", "RMSprop", "Adam", "AdamW", "NAdam")

PAIRS: dict[str, tuple[type[torch.optim.Optimizer], type[torch.optim.Optimizer]]] = {
    name: (getattr(torch.optim, name), getattr(momentopt, name)) for name in ALGORITHMS
}

# Constructor keywords that exercise each algorithm's moments (momentum where it has one).
KWARGS: dict[str, dict[str, Any]] = {
    "SGD": {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3},
    "Adagrad": {"lr": 0.05},
    "Adadelta": {"lr": 1.0},
    "RMSprop": {"lr": 0.01, "momentum": 0.5},
    "Adam": {"lr": 0.01},
    "AdamW": {"lr": 0.01, "weight_decay": 0.1},
    "NAdam": {"lr": 0.01},
}

# A few steps (≤ 12) of a 6-8-3 MLP: momentopt's and torch's float32 runs (or a DDP run and
# one process on the combined batch, which sums gradients in another order) differ by a few
# roundings per step. Measured on AVX-512, AVX2 and the scalar default path: at most 6 % of
# this bound in these tests (15 % of it in the unit tests that use the same numbers), so
# 1e-5 relative (~80 ulps) holds on other machines; a changed formula moves these numbers by
# 1e-3 or more. (tests/helpers.py judges the long runs through a float64 run instead.)
TOL = {"rtol": 1e-5, "atol": 1e-6}


def tiny_model(seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).to(dtype)


def batches(n: int, batch: int = 8, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(batch, 6, generator=g), torch.randn(batch, 3, generator=g)) for _ in range(n)
    ]


def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(model(x), y)


def twin(
    name: str, model: nn.Module | None = None, **overrides: Any
) -> tuple[nn.Module, torch.optim.Optimizer, nn.Module, torch.optim.Optimizer]:
    """(torch model, torch optimizer, our model, our optimizer), same weights and keywords."""
    torch_cls, our_cls = PAIRS[name]
    kwargs = {**KWARGS[name], **overrides}
    model_t = model if model is not None else tiny_model()
    model_o = copy.deepcopy(model_t)
    return (
        model_t,
        torch_cls(model_t.parameters(), **kwargs),
        model_o,
        our_cls(model_o.parameters(), **kwargs),
    )


def assert_params_close(a: nn.Module, b: nn.Module, msg: str = "", **tol: float) -> None:
    """Every parameter of ``a`` within ``tol`` (default TOL) of ``b``'s (numbers reported)."""
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert_close_report(pa, pb, f"{msg} {name}".strip(), **(tol or TOL))


def train(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    data: list[tuple[torch.Tensor, torch.Tensor]],
    after_step: Callable[[int, torch.Tensor], None] | None = None,
) -> list[float]:
    losses = []
    for i, (x, y) in enumerate(data):
        opt.zero_grad()
        loss = loss_fn(model, x, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if after_step is not None:
            after_step(i, loss.detach())
    return losses
