"""differentiable=True: gradients flow through a step (gradcheck), agree with torch.optim's
differentiable step — with respect to the parameter, the gradient and every state tensor,
0-d ones (``step``, NAdam's ``mu_product``) included — and the step's numbers equal the
normal step's."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from .helpers import assert_close_report, assert_no_worse_than_torch
from .optimizer_table import OPTIMIZERS, names, supports

DTYPE = torch.float64
CONFIGS = {
    "SGD": [
        {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1},
        {"lr": 0.1, "momentum": 0.9, "nesterov": True, "maximize": True},
    ],
    "Adagrad": [{"lr": 0.1, "lr_decay": 0.1, "weight_decay": 0.1}],
    # ε inside Adadelta's roots is tiny next to E[Δw²]; a larger one keeps finite differences sane
    "Adadelta": [
        {"lr": 0.5, "rho": 0.8, "weight_decay": 0.1, "eps": 1e-2},
        {"maximize": True, "eps": 1e-3},
    ],
    "RMSprop": [{"lr": 0.01, "momentum": 0.5, "centered": True}, {"lr": 0.01, "weight_decay": 0.1}],
    "Adam": [{"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}, {"lr": 0.01, "maximize": True}],
    "AdamW": [{"lr": 0.01, "amsgrad": True}, {"lr": 0.01, "weight_decay": 0.5}],
    "NAdam": [
        {"lr": 0.01, "decoupled_weight_decay": True, "weight_decay": 0.1},
        {"lr": 0.01, "momentum_decay": 0.1},
    ],
    "Adamax": [{"lr": 0.01, "weight_decay": 0.1}, {"lr": 0.01, "maximize": True}],
    # from the second step on with β2 = 0.6, so the adapted (rectified) step runs
    "RAdam": [
        {"lr": 0.01, "betas": (0.9, 0.6), "decoupled_weight_decay": True, "weight_decay": 0.1},
        {"lr": 0.01, "maximize": True},
    ],
    "Rprop": [{"lr": 0.1, "etas": (0.4, 1.5)}, {"lr": 0.01, "maximize": True}],
    "ASGD": [{"lr": 0.1, "lambd": 0.1, "weight_decay": 0.1}, {"maximize": True, "alpha": 0.5}],
}
DIFFERENTIABLE = names(supports("differentiable"))  # (SparseAdam has no differentiable step)
CASES = [
    pytest.param(name, kw, id=f"{name}-{i}")
    for name in DIFFERENTIABLE
    for i, kw in enumerate(CONFIGS[name])
]
# 0-d states as torch keeps them: float32 by default, float64 under a float64 default dtype.
SCALAR_DTYPES = [
    pytest.param(torch.float32, id="f32-scalars"),
    pytest.param(torch.float64, id="f64-scalars"),
]

Inputs = tuple[list[str], tuple[torch.Tensor, ...], dict[str, torch.Tensor]]


def warm_state(
    name: str, kwargs: dict[str, Any], param: torch.Tensor, scalar_dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """A realistic state after two ordinary steps (torch's own optimizer makes it), its 0-d
    tensors in ``scalar_dtype``."""
    p = param.detach().clone().requires_grad_()
    opt = OPTIMIZERS[name].torch_cls([p], **kwargs)
    for k in range(2):
        p.grad = torch.sin(p.detach() * (k + 2))
        opt.step()
    state = {k: v.detach().clone() for k, v in opt.state[p].items()}
    return {k: v.to(scalar_dtype) if v.dim() == 0 else v for k, v in state.items()}


def inputs(
    name: str,
    kwargs: dict[str, Any],
    scalar_dtype: torch.dtype = DTYPE,
    constant: tuple[str, ...] = (),
) -> Inputs:
    """(differentiable state keys, (param, grad, *their state tensors), constant states):
    every state is differentiable except the row's ``differentiable_constants`` (torch refuses
    them requiring grad) and ``constant``."""
    g = torch.Generator().manual_seed(7)
    param = torch.randn(4, generator=g, dtype=DTYPE)
    grad = torch.randn(4, generator=g, dtype=DTYPE)
    state = warm_state(name, kwargs, param, scalar_dtype)
    fixed = (*OPTIMIZERS[name].differentiable_constants, *constant)
    keys = [k for k in state if k not in fixed]
    constants = {k: v for k, v in state.items() if k in fixed}
    tensors = (param, grad, *(state[k] for k in keys))
    return keys, tuple(t.requires_grad_() for t in tensors), constants


def widened(given: Inputs) -> Inputs:
    """The same inputs with float64 0-d states (the same values): torch's step on them is
    the reference that float32 0-d states' rounding is measured against."""
    keys, tensors, constants = given
    wide = tuple(t.detach().to(DTYPE).requires_grad_() for t in tensors)
    return keys, wide, {k: v.to(DTYPE) for k, v in constants.items()}


def one_step(
    cls: type,
    kwargs: dict[str, Any],
    keys: list[str],
    constants: dict[str, Any],
    differentiable: bool,
    param: torch.Tensor,
    grad: torch.Tensor,
    *state_values: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """The new (param, *state[keys]) after one step from the given param, grad and state."""
    p = param.clone() if differentiable else param.detach().clone()
    p.grad = grad if differentiable else grad.detach()
    opt = cls([p], differentiable=differentiable, **copy.deepcopy(kwargs))
    state = {
        k: v.clone() if differentiable else v.detach().clone()
        for k, v in zip(keys, state_values, strict=False)
    }
    opt.state[p] = {**{k: v.clone() for k, v in constants.items()}, **state}
    opt.step()
    return (p, *(opt.state[p][k] for k in keys))


def run(
    cls: type, kwargs: dict[str, Any], given: Inputs
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor | None, ...]]:
    """One differentiable step's outputs, and the gradients of a weighted sum of them with
    respect to every input (None where an input does not influence them)."""
    keys, tensors, constants = given
    outs = one_step(cls, kwargs, keys, constants, True, *tensors)
    weights = [torch.linspace(0.5, 1.5, o.numel(), dtype=DTYPE).view(o.shape) for o in outs]
    loss = sum((o * w).sum() for o, w in zip(outs, weights, strict=True))
    return outs, torch.autograd.grad(loss, tensors, allow_unused=True)


def _labels(keys: list[str]) -> list[str]:
    return ["param", "grad", *keys]


@pytest.mark.parametrize("name,kwargs", CASES)
def test_gradcheck_through_a_step(name: str, kwargs: dict[str, Any]) -> None:
    """Our differentiable step's derivatives w.r.t. param, grad and state (float64 0-d state
    such as ``mu_product`` included) are correct. ``step`` is a count that torch and we read
    as a number (no derivative flows through its value), so it is held constant here, as is
    the row's ``no_derivative_through``."""
    constant = ("step", *OPTIMIZERS[name].no_derivative_through)
    keys, tensors, constants = inputs(name, kwargs, constant=constant)
    cls = OPTIMIZERS[name].ours_cls

    def fn(*args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return one_step(cls, kwargs, keys, constants, True, *args)

    assert torch.autograd.gradcheck(fn, tensors, check_batched_grad=False)


@pytest.mark.parametrize("scalar_dtype", SCALAR_DTYPES)
@pytest.mark.parametrize("name,kwargs", CASES)
def test_differentiable_step_matches_torch_and_normal_step(
    name: str, kwargs: dict[str, Any], scalar_dtype: torch.dtype
) -> None:
    """Values equal the normal step's; values and gradients w.r.t. every input equal torch's
    differentiable step's: within float64 rounding for float64 0-d state; for float32 0-d
    state no further from the float64-state step than torch's own (the row's
    ``tolerances.drift``: torch
    computes bias corrections and NAdam's coefficients in the 0-d state's float32, we in
    float64, as in the normal step)."""
    given = inputs(name, kwargs, scalar_dtype)
    keys, tensors, constants = given
    case = OPTIMIZERS[name]
    torch_cls, ours_cls = case.pair
    ours, grads_o = run(ours_cls, kwargs, given)
    theirs, grads_t = run(torch_cls, kwargs, given)
    plain = one_step(ours_cls, kwargs, keys, constants, False, *tensors)
    labels = _labels(keys)
    assert [o.requires_grad for o in ours] == [t.requires_grad for t in theirs]
    assert not any(t.requires_grad for t in plain)
    for o, n, label in zip(ours, plain, labels[:1] + keys, strict=True):
        assert_close_report(o, n, f"{label} vs normal step", **case.tolerances.normal_step.kwargs())
    assert [g is None for g in grads_o] == [g is None for g in grads_t], labels
    pairs = [
        (f"{label} after the step", o, t)
        for label, o, t in zip(labels[:1] + keys, ours, theirs, strict=True)
    ]
    pairs += [
        (f"d/d {label}", o, t)
        for label, o, t in zip(labels, grads_o, grads_t, strict=True)
        if o is not None
    ]
    if scalar_dtype == DTYPE:
        for label, o, t in pairs:
            assert_close_report(o, t, label, **case.tolerances.direct[DTYPE].kwargs())
        return
    reference, grads_r = run(torch_cls, kwargs, widened(given))
    refs = [*reference, *(g for g in grads_r if g is not None)]
    for (label, o, t), r in zip(pairs, refs, strict=True):
        assert_no_worse_than_torch(o, t, r, label, tolerances=case.tolerances)


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_table_differentiable_constants_are_torchs(name: str) -> None:
    """torch's differentiable step refuses exactly the row's ``differentiable_constants``
    requiring grad (and takes every other state requiring grad)."""
    case = OPTIMIZERS[name]
    kwargs = CONFIGS[name][0]
    for key in warm_state(name, kwargs, torch.randn(4, dtype=DTYPE), DTYPE):
        p = torch.randn(4, dtype=DTYPE, requires_grad=True).clone()  # (as in one_step)
        p.grad = torch.randn(4, dtype=DTYPE)
        opt = case.torch_cls([p], differentiable=True, **copy.deepcopy(kwargs))
        state = warm_state(name, kwargs, p.detach(), DTYPE)
        state[key] = state[key].requires_grad_().clone()
        opt.state[p] = state
        try:
            opt.step()
            refused = False
        except RuntimeError as err:
            assert "requires_grad" in str(err), (key, err)
            refused = True
        assert refused == (key in case.differentiable_constants), key
