"""differentiable=True: gradients flow through a step (gradcheck), agree with torch.optim's
differentiable step, and the step's numbers equal the normal step's."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from .helpers import ALGORITHMS, PAIRS

DTYPE = torch.float64
CONFIGS = {
    "SGD": [{"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "maximize": True}],
    "Adagrad": [{"lr": 0.1, "lr_decay": 0.1, "weight_decay": 0.1}],
    # ε inside Adadelta's roots is tiny next to E[Δw²]; a larger one keeps finite differences sane
    "Adadelta": [{"lr": 0.5, "rho": 0.8, "weight_decay": 0.1, "eps": 1e-2}, {"maximize": True, "eps": 1e-3}],
    "RMSprop": [{"lr": 0.01, "momentum": 0.5, "centered": True}, {"lr": 0.01, "weight_decay": 0.1}],
    "Adam": [{"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}, {"lr": 0.01, "maximize": True}],
    "AdamW": [{"lr": 0.01, "amsgrad": True}, {"lr": 0.01, "weight_decay": 0.5}],
    "NAdam": [{"lr": 0.01, "decoupled_weight_decay": True, "weight_decay": 0.1}, {"lr": 0.01, "momentum_decay": 0.1}],
}
CASES = [
    pytest.param(name, kw, id=f"{name}-{i}") for name in ALGORITHMS for i, kw in enumerate(CONFIGS[name])
]


def warm_state(name: str, kwargs: dict[str, Any], param: torch.Tensor) -> dict[str, Any]:
    """A realistic state after two ordinary steps (torch's own optimizer makes it)."""
    p = param.detach().clone().requires_grad_()
    opt = PAIRS[name][0]([p], **kwargs)
    for k in range(2):
        p.grad = torch.sin(p.detach() * (k + 2))
        opt.step()
    return {k: v.detach().clone() for k, v in opt.state[p].items()}


def inputs(name: str, kwargs: dict[str, Any]) -> tuple[list[str], tuple[torch.Tensor, ...], dict[str, Any]]:
    """(differentiable state keys, (param, grad, *state tensors), constant 0-d state)."""
    g = torch.Generator().manual_seed(7)
    param = torch.randn(4, generator=g, dtype=DTYPE)
    grad = torch.randn(4, generator=g, dtype=DTYPE)
    state = warm_state(name, kwargs, param)
    keys = [k for k, v in state.items() if v.dim() > 0]
    constants = {k: v for k, v in state.items() if v.dim() == 0}
    tensors = (param, grad, *(state[k] for k in keys))
    return keys, tuple(t.requires_grad_() for t in tensors), constants


def one_step(
    cls: type, kwargs: dict[str, Any], keys: list[str], constants: dict[str, Any], differentiable: bool,
    param: torch.Tensor, grad: torch.Tensor, *state_values: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """The new (param, *state) after one step from the given param, grad and state."""
    p = param.clone() if differentiable else param.detach().clone()
    p.grad = grad if differentiable else grad.detach()
    opt = cls([p], differentiable=differentiable, **copy.deepcopy(kwargs))
    state = {k: v.clone() if differentiable else v.detach().clone() for k, v in zip(keys, state_values)}
    opt.state[p] = {**{k: v.clone() for k, v in constants.items()}, **state}
    opt.step()
    return (p, *(opt.state[p][k] for k in keys))


@pytest.mark.parametrize("name,kwargs", CASES)
def test_gradcheck_through_a_step(name: str, kwargs: dict[str, Any]) -> None:
    """Our differentiable step's derivatives w.r.t. param, grad and state are correct."""
    keys, tensors, constants = inputs(name, kwargs)
    cls = PAIRS[name][1]

    def fn(*args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return one_step(cls, kwargs, keys, constants, True, *args)

    assert torch.autograd.gradcheck(fn, tensors, check_batched_grad=False)


@pytest.mark.parametrize("name,kwargs", CASES)
def test_differentiable_step_matches_torch_and_normal_step(name: str, kwargs: dict[str, Any]) -> None:
    """Values equal the normal step's and torch's; gradients equal torch's differentiable step."""
    keys, tensors, constants = inputs(name, kwargs)
    torch_cls, ours_cls = PAIRS[name]
    ours = one_step(ours_cls, kwargs, keys, constants, True, *tensors)
    theirs = one_step(torch_cls, kwargs, keys, constants, True, *tensors)
    plain = one_step(ours_cls, kwargs, keys, constants, False, *tensors)
    assert all(t.requires_grad for t in ours)
    assert not any(t.requires_grad for t in plain)
    # torch's differentiable path computes bias corrections from the float32 ``step`` tensor
    # (its plain path from a Python float), so torch itself differs by ~1e-8 between the two;
    # ours equals the plain step and torch's differentiable one to float32 precision (values and grads).
    for o, t, n in zip(ours, theirs, plain, strict=True):
        torch.testing.assert_close(o, t, rtol=1e-5, atol=1e-9)
        torch.testing.assert_close(o.detach(), n, rtol=1e-12, atol=1e-14)
    weights = [torch.linspace(0.5, 1.5, o.numel(), dtype=DTYPE).view_as(o) for o in ours]
    grads_o = torch.autograd.grad(sum((o * w).sum() for o, w in zip(ours, weights)), tensors, allow_unused=True)
    grads_t = torch.autograd.grad(sum((t * w).sum() for t, w in zip(theirs, weights)), tensors, allow_unused=True)
    for i, (go, gt) in enumerate(zip(grads_o, grads_t, strict=True)):
        assert (go is None) == (gt is None), i
        if go is not None:
            torch.testing.assert_close(go, gt, rtol=1e-4, atol=1e-8, msg=f"d/d input {i}")
