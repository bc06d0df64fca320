"""momentopt.Lion against lion-pytorch 0.2.5's ``Lion`` (its reference implementation): the
trajectories and state of a table of hyperparameters, loading checkpoints both ways, the
checks, and the paths agreeing bit for bit."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from lion_pytorch import Lion as ReferenceLion
from torch import nn

import momentopt

from .modern_reference import compare, executors_agree, train_hand

CONFIGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "lr-betas": {"lr": 3e-3, "betas": (0.8, 0.95)},
    "weight-decay": {"lr": 1e-3, "weight_decay": 0.5},
    "decoupled": {"lr": 2e-3, "weight_decay": 1e-2, "decoupled_weight_decay": True},
    "beta-edges": {"lr": 1e-3, "betas": (0.0, 1.0)},
}


def _lr_halved(step: int, opts: Any) -> None:
    """A schedule: the lr halved at step 15 (the decoupled decay follows it, relative to α₀)."""
    if step == 15:
        for opt in opts:
            for group in opt.param_groups:
                group["lr"] /= 2


@pytest.mark.parametrize("name", CONFIGS)
def test_matches_lion_pytorch(name: str) -> None:
    kwargs = CONFIGS[name]
    compare(
        lambda p: momentopt.Lion(p, **kwargs),
        lambda p: ReferenceLion(p, **kwargs),
        hook=_lr_halved if name == "decoupled" else None,
    )


def test_maximize_ascends_as_lion_pytorch_descends_the_negated_gradient() -> None:
    kwargs = {"lr": 1e-3, "weight_decay": 0.1}
    compare(
        lambda p: momentopt.Lion(p, **kwargs, maximize=True),
        lambda p: ReferenceLion(p, **kwargs),
        maximize=True,
        dtypes=(torch.float64,),
    )


def test_param_groups_decay_relative_to_the_constructors_lr() -> None:
    """lion-pytorch divides every group's decay by the constructor's lr, whatever the group's."""

    def groups(cls: type, params: Any) -> torch.optim.Optimizer:
        params = list(params)
        return cls(
            [{"params": params[:2]}, {"params": params[2:], "lr": 5e-3}],
            lr=1e-3,
            weight_decay=0.2,
            decoupled_weight_decay=True,
        )

    compare(
        lambda p: groups(momentopt.Lion, p),
        lambda p: groups(ReferenceLion, p),
        dtypes=(torch.float64,),
    )


def test_executors_bit_for_bit() -> None:
    executors_agree(momentopt.Lion, {"lr": 1e-3, "weight_decay": 0.1})


def test_checkpoints_load_both_ways() -> None:
    """A lion-pytorch checkpoint loads into momentopt (its groups lack momentopt's flags; the
    constructor's decay options are kept) and training goes on identically, and back."""
    kwargs = {"lr": 1e-3, "weight_decay": 0.3, "decoupled_weight_decay": True}
    for first, second in ((ReferenceLion, momentopt.Lion), (momentopt.Lion, ReferenceLion)):
        (pa, a), (pb, b) = train_hand(
            [lambda p: first(p, **kwargs), lambda p: first(p, **kwargs)], torch.float64, 10
        )
        moved = [nn.Parameter(p.detach().clone()) for p in pb]
        c = second(moved, **kwargs)
        c.load_state_dict(b.state_dict())
        assert all(
            torch.equal(c.state[q]["exp_avg"], b.state[p]["exp_avg"])
            for p, q in zip(pb, moved, strict=True)
        )
        g = torch.Generator().manual_seed(5)
        for _ in range(5):
            for p, q in zip(pa, moved, strict=True):
                p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
                q.grad = p.grad.clone()
            a.step()
            c.step()
        for p, q in zip(pa, moved, strict=True):
            assert torch.equal(p, q)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"lr": 0.0}, AssertionError, "Invalid learning rate: 0.0"),
        ({"lr": -1e-3}, AssertionError, "Invalid learning rate"),
        ({"betas": (1.5, 0.9)}, AssertionError, "beta parameter at index 0: 1.5"),
        ({"betas": (0.9, -0.1)}, AssertionError, "beta parameter at index 1: -0.1"),
        ({"fused": True, "foreach": True}, RuntimeError, "`fused` and `foreach`"),
        ({"cautious": 1}, TypeError, "cautious must be True or False"),
    ],
)
def test_invalid_hyperparameters(kwargs: dict[str, Any], error: type, match: str) -> None:
    p = nn.Parameter(torch.randn(3))
    if "lr" in kwargs or "betas" in kwargs:  # lion-pytorch refuses with the same type
        with pytest.raises(error):
            ReferenceLion([p], **kwargs)
    with pytest.raises(error, match=match):
        momentopt.Lion([p], **kwargs)


def test_refusals_at_the_step() -> None:
    p = nn.Parameter(torch.randn(3))
    p.grad = torch.randn(3)
    with pytest.raises(ValueError):  # betas of another length, unpacked by the step as in
        momentopt.Lion([p], betas=(0.9, 0.99, 0.999)).step()  # lion-pytorch
    z = nn.Parameter(torch.randn(3, dtype=torch.complex64))
    z.grad = torch.randn(3, dtype=torch.complex64)
    with pytest.raises(RuntimeError, match="Lion does not support complex parameters"):
        momentopt.Lion([z]).step()


def test_signature_and_state() -> None:
    import inspect

    ours = inspect.signature(momentopt.Lion).parameters
    theirs = inspect.signature(ReferenceLion).parameters
    assert list(ours)[: len(theirs)] == list(theirs)
    for name in theirs:
        assert ours[name].default == theirs[name].default, name
    assert [k for k, p in ours.items() if p.kind is p.KEYWORD_ONLY] == [
        "maximize",
        "foreach",
        "fused",
        "differentiable",
        "cautious",
        "state_precision",
    ]
    p = nn.Parameter(torch.randn(3))
    p.grad = torch.randn(3)
    opt = momentopt.Lion([p])
    opt.step()
    assert list(opt.state[p]) == ["exp_avg"]
    assert [name for name, _ in opt.describe()][:3] == [
        "1. gradient",
        "2. φ (first moment)",
        "2. ψ (second moment)",
    ]
    assert ("2. direction u", "u ← sign(u)") in opt.describe()
